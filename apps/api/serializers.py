from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal

from rest_framework import serializers

from apps.accounts.models import Subscription
from apps.catalog.models import CreditPack, Feature, Plan
from apps.core.decimals import CREDIT_DIGITS, CREDIT_PLACES
from apps.wallets.models import LedgerEntry
from apps.webhooks.models import EVENT_TYPES

from .fields import (
    SIX_PLACES,
    CreditsField,
    ExternalIdField,
    MetadataField,
    QuerySerializer,
    StrictCharField,
    StrictDateTimeField,
    StrictIntegerField,
    Timestamp,
    WebUrlField,
)

# DecimalField's: the thread's context (decimal's default rounding, half to even) with the
# field's precision.
SIGNED_CREDITS_CONTEXT = Context(prec=CREDIT_DIGITS)


class SignedCredits(serializers.DecimalField):
    """A credit amount in a response: a decimal string with 6 places, possibly negative."""

    def __init__(self, **kwargs):
        super().__init__(max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES, **kwargs)

    def to_representation(self, value):
        """DecimalField's, with its decimal context built once rather than copied from the
        thread's for every value (about a quarter of a consume's rendering)."""
        if not isinstance(value, Decimal):
            value = Decimal(str(value).strip())
        return format(value.quantize(SIX_PLACES, context=SIGNED_CREDITS_CONTEXT), "f")


class PlanAllowanceOut(serializers.Serializer):
    credit_type = serializers.CharField(source="credit_type.code")
    credits_per_period = serializers.DecimalField(max_digits=24, decimal_places=6)


class PlanFeatureOut(serializers.Serializer):
    feature = serializers.CharField(source="feature.code")
    enabled = serializers.BooleanField()
    credits_per_unit = serializers.DecimalField(
        max_digits=24, decimal_places=6, allow_null=True, help_text="Null: the feature's own price."
    )
    limit_per_period = serializers.DecimalField(
        max_digits=24, decimal_places=6, allow_null=True, help_text="Null: no quota."
    )


class PlanOut(serializers.ModelSerializer):
    included_credits = PlanAllowanceOut(source="allowances", many=True)
    features = PlanFeatureOut(source="plan_features", many=True)

    class Meta:
        model = Plan
        fields = [
            "code", "version", "name", "description", "billing_interval", "price", "currency",
            "included_credits", "features", "rollover_percent", "rollover_cap",
            "rollover_expires_after_periods", "overage_policy", "overage_limit",
            "overage_unit_price",
        ]  # fmt: skip


class CreditPackOut(serializers.ModelSerializer):
    credit_type = serializers.CharField(source="credit_type.code")

    class Meta:
        model = CreditPack
        fields = [
            "code", "name", "description", "credit_type", "credits", "price", "currency",
            "expires_after_days",
        ]  # fmt: skip


class FeatureOut(serializers.ModelSerializer):
    credit_type = serializers.CharField(source="credit_type.code", allow_null=True)

    class Meta:
        model = Feature
        fields = [
            "code",
            "name",
            "description",
            "kind",
            "credit_type",
            "credits_per_unit",
            "unit_name",
        ]


# --- accounts -----------------------------------------------------------------------------


class StrictEmailField(StrictCharField, serializers.EmailField):
    """An email address, only ever a JSON string."""


def subscription_status_field():
    return serializers.ChoiceField(
        choices=list(Subscription.LIVE_STATUSES),
        allow_null=True,
        help_text="The plan's state: `trialing` during a free trial (the period ends when it "
        "does), `active`, `past_due`; null without a plan.",
    )


class AccountIn(serializers.Serializer):
    name = StrictCharField(max_length=200, required=False, allow_blank=True)
    email = StrictEmailField(max_length=254, required=False, allow_blank=True)
    metadata = MetadataField()
    plan = StrictCharField(required=False, help_text="A plan code: a manual plan.")


class AccountOut(serializers.Serializer):
    external_id = serializers.CharField()
    name = serializers.CharField()
    email = serializers.CharField()
    status = serializers.CharField()
    plan = serializers.CharField(allow_null=True)
    plan_version = serializers.IntegerField(
        allow_null=True, help_text="The version of the plan the account is on (its terms)."
    )
    subscription_status = subscription_status_field()
    current_period_start = Timestamp(allow_null=True)
    current_period_end = Timestamp(allow_null=True)
    metadata = serializers.JSONField()
    created_at = Timestamp()


# --- balances, entitlements, ledger, usage ---------------------------------------------------


class GrantSummaryOut(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.CharField()
    remaining = CreditsField()
    expires_at = Timestamp(allow_null=True)
    priority = serializers.IntegerField()


class NextExpiryOut(serializers.Serializer):
    at = Timestamp()
    credits = CreditsField()


class WalletOut(serializers.Serializer):
    credit_type = serializers.CharField()
    balance = SignedCredits()
    held = SignedCredits()
    available = SignedCredits()
    overdraft_limit = SignedCredits()
    grants = GrantSummaryOut(many=True)
    next_expiry = NextExpiryOut(allow_null=True)


class BalanceOut(serializers.Serializer):
    account = serializers.CharField()
    at = Timestamp(allow_null=True)
    wallets = WalletOut(many=True)


class BalanceQuery(QuerySerializer):
    at = StrictDateTimeField(required=False, help_text="The balance as it stood then.")


class EntitlementOut(serializers.Serializer):
    feature = serializers.CharField()
    kind = serializers.CharField()
    enabled = serializers.BooleanField()
    credit_type = serializers.CharField(allow_null=True)
    credits_per_unit = SignedCredits(allow_null=True)
    limit_per_period = SignedCredits(allow_null=True)
    used_this_period = SignedCredits(allow_null=True)
    source = serializers.CharField(
        help_text='Where these terms come from: "contract" (the account\'s contract sets one of '
        'them), "plan:<code>@v<version>", or "feature" (the feature\'s own, without a plan).'
    )


class EntitlementsOut(serializers.Serializer):
    account = serializers.CharField()
    plan = serializers.CharField(allow_null=True)
    plan_version = serializers.IntegerField(allow_null=True)
    subscription_status = subscription_status_field()
    period_end = Timestamp(allow_null=True)
    features = EntitlementOut(many=True)


# A ledger cursor: "b" and an entry id (at most 18 digits, so always a valid bigint).
CURSOR_PATTERN = r"^b[1-9][0-9]{0,17}$"
UNKNOWN_CURSOR = "unknown: pass `next` of the previous page"


class LedgerQuery(QuerySerializer):
    credit_type = serializers.CharField(required=False, trim_whitespace=False)
    kind = serializers.ChoiceField(choices=LedgerEntry.Kind.values, required=False)
    since = StrictDateTimeField(required=False)
    until = StrictDateTimeField(required=False)
    limit = serializers.IntegerField(min_value=1, max_value=500, default=50)
    cursor = serializers.RegexField(
        CURSOR_PATTERN.removesuffix("$") + r"\Z",
        required=False,
        error_messages={"invalid": UNKNOWN_CURSOR},
        help_text="`next` of the previous page.",
    )


class LedgerEntryOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    amount = SignedCredits()
    balance_after = SignedCredits()
    credit_type = serializers.CharField(source="wallet.credit_type.code")
    grant = serializers.IntegerField(source="grant_id", allow_null=True)
    usage_event = serializers.IntegerField(source="usage_event_id", allow_null=True)
    reason = serializers.CharField()
    created_at = Timestamp()


class LedgerPageOut(serializers.Serializer):
    results = LedgerEntryOut(many=True)
    next = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the next page.")


# A usage page's cursor: when the previous page's last event occurred (microseconds since
# 1970, UTC) and its id (events are newest first by occurrence, then id).
USAGE_CURSOR_PATTERN = r"^u[0-9]{1,18}\.[1-9][0-9]{0,17}$"


class UsageQuery(QuerySerializer):
    feature = serializers.CharField(required=False, trim_whitespace=False)
    since = StrictDateTimeField(required=False)
    until = StrictDateTimeField(required=False)
    group_by = serializers.ChoiceField(choices=["day", "feature"], required=False)
    limit = serializers.IntegerField(
        min_value=1, max_value=1000, default=1000, help_text="Events per page (not totals)."
    )
    cursor = serializers.RegexField(
        USAGE_CURSOR_PATTERN.removesuffix("$") + r"\Z",
        required=False,
        error_messages={"invalid": UNKNOWN_CURSOR},
        help_text="`next` of the previous page of events.",
    )

    def validate_cursor(self, value):
        """The (occurred_at, id) the cursor names."""
        micros, pk = value[1:].split(".")
        try:
            return EPOCH + timedelta(microseconds=int(micros)), int(pk)
        except OverflowError:
            raise serializers.ValidationError(UNKNOWN_CURSOR) from None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def usage_cursor(event):
    """The cursor of the page after `event` (see USAGE_CURSOR_PATTERN)."""
    micros = (event.occurred_at - EPOCH) // timedelta(microseconds=1)
    return f"u{micros}.{event.pk}"


class UsageEventOut(serializers.Serializer):
    id = serializers.IntegerField()
    feature = serializers.CharField(source="feature.code")
    quantity = CreditsField()
    credits = SignedCredits()
    credit_type = serializers.CharField(source="credit_type.code")
    occurred_at = Timestamp()
    metadata = serializers.JSONField()


class UsageTotalOut(serializers.Serializer):
    group = serializers.CharField(help_text="The day (YYYY-MM-DD, UTC) or the feature code.")
    quantity = SignedCredits()
    credits = SignedCredits()


class UsageOut(serializers.Serializer):
    account = serializers.CharField()
    group_by = serializers.CharField(allow_null=True)
    events = UsageEventOut(many=True, required=False)
    totals = UsageTotalOut(many=True, required=False)
    next = serializers.CharField(
        allow_null=True,
        help_text="Pass as `cursor` for the next page of events; null on the last page and "
        "for totals.",
    )


# --- checking and consuming ------------------------------------------------------------------


class CheckIn(serializers.Serializer):
    account = ExternalIdField()
    feature = StrictCharField(max_length=64)
    quantity = CreditsField(default=Decimal(1))


class CheckOut(serializers.Serializer):
    allowed = serializers.BooleanField()
    reason = serializers.CharField(allow_null=True)
    credits_required = SignedCredits(allow_null=True)
    credit_type = serializers.CharField(allow_null=True)
    available = SignedCredits(allow_null=True)


class ConsumeIn(serializers.Serializer):
    account = ExternalIdField()
    feature = StrictCharField(max_length=64)
    quantity = CreditsField(default=Decimal(1))
    idempotency_key = StrictCharField(max_length=255, required=False)
    metadata = MetadataField()
    occurred_at = StrictDateTimeField(required=False)


class ConsumeOut(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    account = serializers.CharField(source="account.external_id")
    feature = serializers.CharField()
    quantity = CreditsField()
    credits = SignedCredits()
    credit_type = serializers.CharField()
    balance_after = SignedCredits()
    available_after = SignedCredits()
    created_at = Timestamp()


BATCH_MAX = 1000


class BatchIn(serializers.Serializer):
    events = serializers.ListField(
        child=serializers.DictField(),
        min_length=1,
        max_length=BATCH_MAX,
        help_text=f"1-{BATCH_MAX:,} consume bodies (JSON objects), each checked on its own; "
        f"more than {BATCH_MAX:,} answer 413 batch_too_large.",
    )


class ErrorOut(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class BatchResultOut(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.IntegerField(help_text="The status a single consume would answer.")
    id = serializers.IntegerField(required=False)
    credits = SignedCredits(required=False)
    replayed = serializers.BooleanField(required=False)
    error = ErrorOut(required=False)


class BatchOut(serializers.Serializer):
    results = BatchResultOut(many=True)


# --- reservations ----------------------------------------------------------------------------


class ReserveIn(serializers.Serializer):
    account = ExternalIdField()
    feature = StrictCharField(max_length=64)
    quantity = CreditsField()
    ttl_seconds = StrictIntegerField(min_value=1, max_value=86400, default=900)
    idempotency_key = StrictCharField(max_length=255, required=False)


class ReservationOut(serializers.Serializer):
    id = serializers.IntegerField()
    account = serializers.CharField(source="account.external_id")
    feature = serializers.CharField(source="feature.code")
    quantity = CreditsField()
    status = serializers.CharField()
    credits_held = SignedCredits()
    expires_at = Timestamp()
    created_at = Timestamp()


class CommitIn(serializers.Serializer):
    quantity = CreditsField()
    metadata = MetadataField()


class CommitOut(serializers.Serializer):
    reservation = ReservationOut()
    usage_event = ConsumeOut()


# --- grants ----------------------------------------------------------------------------------


class GrantIn(serializers.Serializer):
    credit_type = StrictCharField(required=False, help_text="Needed if there are several.")
    amount = CreditsField()
    source = serializers.ChoiceField(choices=["promo", "manual", "trial"])
    expires_at = StrictDateTimeField(required=False)
    priority = StrictIntegerField(min_value=0, max_value=32767, required=False)
    reason = StrictCharField(max_length=2000)
    idempotency_key = StrictCharField(max_length=255, required=False)


class GrantOut(serializers.Serializer):
    id = serializers.IntegerField()
    account = serializers.CharField(source="account.external_id")
    credit_type = serializers.CharField(source="wallet.credit_type.code")
    source = serializers.CharField()
    amount = CreditsField()
    remaining = SignedCredits()
    debt_settled = SignedCredits()
    priority = serializers.IntegerField()
    expires_at = Timestamp(allow_null=True)
    reason = serializers.CharField()
    created_at = Timestamp()


class CheckoutIn(serializers.Serializer):
    credit_pack = StrictCharField(required=False, help_text="A credit pack's code.")
    plan = StrictCharField(required=False, help_text="A plan's code.")
    success_url = WebUrlField()
    cancel_url = WebUrlField()

    def validate(self, attrs):
        if ("credit_pack" in attrs) == ("plan" in attrs):
            raise serializers.ValidationError(
                {"credit_pack": ["Give exactly one of credit_pack and plan."]}
            )
        return attrs


class CheckoutOut(serializers.Serializer):
    checkout_url = serializers.URLField()
    session_id = serializers.CharField()


class BillingLinkOut(serializers.Serializer):
    url = serializers.URLField(help_text="The hosted billing page, for this account only.")
    expires_at = Timestamp()


# --- contracts -------------------------------------------------------------------------------
# The body is checked by the contract service (apps/catalog/contracts.py), in the catalog
# file's vocabulary, so the API and the admin give the same messages; these describe it.

TERM = "Leave it out for the plan's."


class OnlyWhatIsSet(serializers.Serializer):
    """An answer carries the terms the contract sets and no others (null is a term: a
    limit of null lifts the plan's quota), as the body that set them did."""

    def to_representation(self, instance):
        data = super().to_representation(instance)
        return {name: value for name, value in data.items() if name in instance}


class ContractFeatureTerms(OnlyWhatIsSet):
    feature = serializers.CharField(help_text="A feature's code.")
    enabled = serializers.BooleanField(required=False, help_text=TERM)
    credits_per_unit = serializers.CharField(required=False, help_text=TERM)
    limit_per_period = serializers.CharField(
        required=False, allow_null=True, help_text="Units per period; null: no quota. " + TERM
    )


class ContractOverageTerms(OnlyWhatIsSet):
    policy = serializers.ChoiceField(
        choices=Plan.OveragePolicy.values, required=False, allow_null=True, help_text=TERM
    )
    limit = serializers.CharField(
        required=False, allow_null=True,
        help_text="Credits below zero allowed; only with policy allow. " + TERM,
    )  # fmt: skip
    unit_price = serializers.CharField(
        required=False, allow_null=True,
        help_text="Price per overage credit, in the period's currency; required with a price. "
        + TERM,
    )  # fmt: skip


class ContractTerms(OnlyWhatIsSet):
    starts_at = Timestamp(required=False, help_text="Default: now.")
    ends_at = Timestamp(
        required=False, allow_null=True, help_text="Null or left out: until removed."
    )
    price = serializers.CharField(
        required=False, allow_null=True,
        help_text="Price per billing period, invoiced by hand (no Stripe). " + TERM,
    )  # fmt: skip
    currency = serializers.CharField(
        required=False, allow_null=True, help_text="Required with a price, and only with one."
    )
    included_credits = serializers.DictField(
        child=serializers.CharField(), required=False,
        help_text="Credits per period by credit type code, instead of the plan's.",
    )  # fmt: skip
    features = ContractFeatureTerms(many=True, required=False)
    overage = ContractOverageTerms(required=False)


# A reason goes to the contract's history after the API key's prefix (100 characters in all).
REASON_MAX = 75


class ContractIn(ContractTerms):
    reason = serializers.CharField(
        required=False, max_length=REASON_MAX, allow_blank=True,
        help_text="Why, for the contract's history.",
    )  # fmt: skip


class ContractReasonIn(serializers.Serializer):
    reason = StrictCharField(required=False, max_length=REASON_MAX, allow_blank=True)


class ContractOut(ContractTerms):
    account = serializers.CharField()
    state = serializers.ChoiceField(
        choices=["scheduled", "live", "ended"], help_text="Whether its terms apply now."
    )
    created_at = Timestamp()
    updated_at = Timestamp()


# --- webhook endpoints -------------------------------------------------------------------------


class WebhookEndpointIn(serializers.Serializer):
    # The shape only (a host name in ASCII: an international one in its xn-- form): whether
    # its host may be sent to is the server's to say (403 destination_refused,
    # docs/webhooks.md "Where endpoints may point").
    url = WebUrlField(max_length=500, help_text="HTTPS URL that receives POSTed events.")
    account = ExternalIdField(
        required=False,
        allow_null=True,
        help_text="The account whose events it receives; null or absent: every account's "
        "(service keys only). A key bound to an account: its own.",
    )
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=[code for code, _ in EVENT_TYPES]),
        default=list,
        max_length=len(EVENT_TYPES),
        help_text="The events it wants; empty: every event.",
    )
    description = StrictCharField(max_length=200, required=False, default="", allow_blank=True)


class WebhookEndpointOut(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    account = serializers.CharField(source="account.external_id", allow_null=True,
                                    default=None)  # fmt: skip
    event_types = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    active = serializers.BooleanField()
    previous_secret_expires_at = Timestamp(
        allow_null=True,
        help_text="Until then the secret before the last rotation signs deliveries too.",
    )
    created_at = Timestamp()


class WebhookEndpointSecretOut(WebhookEndpointOut):
    secret = serializers.CharField(
        help_text="Signs every delivery (docs/webhooks.md). Shown only in this answer: keep it."
    )


class WebhookEndpointListOut(serializers.Serializer):
    results = WebhookEndpointOut(many=True)


class RotateSecretIn(serializers.Serializer):
    overlap_hours = serializers.IntegerField(
        min_value=0,
        max_value=168,
        default=24,
        help_text="How long the old secret still signs deliveries beside the new one.",
    )
