"""The events CreditDesk POSTs to webhook endpoints, described for the OpenAPI document's
`webhooks` (OpenAPI 3.1; SPECTACULAR_SETTINGS["WEBHOOKS"] points at WEBHOOKS below).

These serializers only describe: the payloads are written where the events happen (the
ledger's grants and expiries, the renewal, the trial notice, balance alerts, auto-recharge,
Stripe purchases), and tests/webhooks/test_event_schemas.py checks real deliveries against
these descriptions. The envelope is apps/webhooks/services.body_of's; the event types are
apps/webhooks/models.EVENT_TYPES, each described once here (a type without a description
fails at import)."""

from drf_spectacular.utils import OpenApiResponse, OpenApiWebhook, extend_schema
from rest_framework import serializers

from apps.wallets.models import CreditGrant
from apps.webhooks.models import EVENT_TYPES

from .serializers import SignedCredits

MOMENT = {"help_text": "RFC 3339, with its zone."}


class EventData(serializers.Serializer):
    account = serializers.CharField(help_text="The account's external id.")


class GrantData(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.ChoiceField(choices=CreditGrant.Source.choices)
    amount = SignedCredits()
    expires_at = serializers.DateTimeField(allow_null=True, **MOMENT)
    reference = serializers.CharField(
        allow_null=True, help_text="What made it: a period, a Stripe payment, an API key's."
    )


class CreditsGranted(EventData):
    credit_type = serializers.CharField()
    grant = GrantData()
    balance_after = SignedCredits()


class CreditsExpired(CreditsGranted):
    credits = SignedCredits(help_text="The credits that expired unused (breakage).")


class PeriodRenewed(EventData):
    subscription = serializers.IntegerField()
    plan = serializers.CharField(help_text="The plan's code.")
    status = serializers.CharField(help_text="The subscription's status after the renewal.")
    period_start = serializers.DateTimeField(**MOMENT)
    period_end = serializers.DateTimeField(**MOMENT)
    periods = serializers.IntegerField(help_text="Periods entered: several after a catch-up.")


class TrialEnding(EventData):
    subscription = serializers.IntegerField()
    plan = serializers.CharField()
    trial_end = serializers.DateTimeField(**MOMENT)


class TrialEnded(TrialEnding):
    converted = serializers.BooleanField(help_text="True: the paid plan began.")


class BalanceAlert(EventData):
    credit_type = serializers.CharField()
    available = SignedCredits()
    threshold = SignedCredits(allow_null=True, help_text="Null for depleted without a threshold.")


class RechargeData(EventData):
    credit_pack = serializers.CharField()
    credit_type = serializers.CharField()


class RechargeSucceeded(RechargeData):
    credits = SignedCredits()
    payment_intent = serializers.CharField(required=False, help_text="Stripe's PaymentIntent.")


class RechargeFailed(RechargeData):
    reason = serializers.CharField()


class Money(serializers.Serializer):
    amount = serializers.CharField(allow_null=True, help_text="A decimal string.")
    currency = serializers.CharField(allow_null=True)


class PurchaseMismatch(EventData):
    credit_pack = serializers.CharField(required=False)
    plan = serializers.CharField(required=False)
    sold = Money()
    paid = Money()
    checkout_session = serializers.CharField(required=False)
    payment_intent = serializers.CharField(required=False)
    invoice = serializers.CharField(required=False)


DATA = {
    "credits.granted": CreditsGranted,
    "credits.expired": CreditsExpired,
    "period.renewed": PeriodRenewed,
    "trial.ending": TrialEnding,
    "trial.ended": TrialEnded,
    "balance.low": BalanceAlert,
    "balance.depleted": BalanceAlert,
    "auto_recharge.succeeded": RechargeSucceeded,
    "auto_recharge.failed": RechargeFailed,
    "purchase.mismatch": PurchaseMismatch,
}
if set(DATA) != {code for code, _ in EVENT_TYPES}:
    raise ImportError("every event type is described once: DATA and EVENT_TYPES differ")


def _envelope(event_type, data):
    """The body of a delivery of `event_type`: its own component, named after the type."""
    name = "".join(part.title() for part in event_type.replace(".", "_").split("_")) + "Event"
    return type(name, (serializers.Serializer,), {
        "__doc__": f"A `{event_type}` delivery.",
        "id": serializers.CharField(help_text="evt_…: the same on every retry; deduplicate by it."),
        "type": serializers.ChoiceField(choices=[event_type]),
        "created_at": serializers.DateTimeField(**MOMENT),
        "data": data(),
        "Meta": type("Meta", (), {"ref_name": name}),
    })  # fmt: skip


WEBHOOKS = [
    OpenApiWebhook(
        name=code,
        decorator=extend_schema(
            summary=title.split(" — ", 1)[1],
            description=(
                "POSTed to the endpoints that want it, signed in `CreditDesk-Signature` "
                "(docs/webhooks.md). Any 2xx within 10 s is success; anything else is retried."
            ),
            request=_envelope(code, DATA[code]),
            responses={200: OpenApiResponse(description="Received (any 2xx).")},
        ),
    )
    for code, title in EVENT_TYPES
]
