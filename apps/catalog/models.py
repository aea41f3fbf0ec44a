"""The price book: what credits exist, what features cost, what plans and packs include.

Staff edit it in the admin or through `import_catalog`; the apps never hard-code it.
"""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from apps.core import humanize
from apps.core.currencies import price_problem
from apps.core.fields import (
    code_field,
    credit_field,
    currency_field,
    currency_validator,
    money_field,
    unit_price_field,
)

from .pricing import NO_VALUES_WITH_FEE

# Between a plan's code and its version number where a version is named: `pro@v3`.
VERSION_MARK = "@v"


class CreditType(models.Model):
    """A currency of credits (e.g. "credits", "gpu_minutes"); each has its own wallet."""

    code = code_field()
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return self.name


class Feature(models.Model):
    class Kind(models.TextChoices):
        METERED = "metered", "Metered (costs credits)"
        BOOLEAN = "boolean", "Boolean (on/off entitlement)"

    code = code_field()
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.METERED)
    credit_type = models.ForeignKey(
        CreditType,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="features",
        help_text="Which credits a metered feature spends. Empty for boolean features.",
    )
    credits_per_unit = credit_field(
        default=1, help_text="Credits charged per unit used; plans may override it."
    )
    unit_name = models.CharField(max_length=32, default="unit", help_text='e.g. "call", "page".')
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(credits_per_unit__gte=0), name="feature_credits_per_unit_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(kind="boolean") | Q(credit_type__isnull=False),
                name="feature_metered_has_credit_type",
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        if self.kind == self.Kind.METERED and not self.credit_type_id:
            raise ValidationError({"credit_type": "A metered feature needs a credit type."})


def stripe_price_field(help_text="The Stripe Price customers pay; set by 'Sync to Stripe'."):
    """The Stripe Price customers pay for a plan, pack or contract, as dj-stripe mirrors it."""
    return models.ForeignKey(
        "djstripe.Price",
        to_field="id",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        help_text=help_text,
    )


class Plan(models.Model):
    """One version of a plan: the plan's code with every pricing term it sells under.

    Subscribers stay on the version they took until staff move them (grandfathering); a
    change of terms on a version with subscribers publishes the next version under the same
    code (`apps/catalog/services.publish_plan_version`). `current` marks the one new
    subscribers get. Name, description and listing apply to a version as it is edited.
    """

    class Interval(models.TextChoices):
        MONTH = "month", "Monthly"
        YEAR = "year", "Yearly"

    class OveragePolicy(models.TextChoices):
        BLOCK = "block", "Block at zero"
        ALLOW = "allow", "Allow overage up to the limit"

    code = code_field(
        unique=False,
        help_text="Stable identifier used by the API and catalog files, shared by the plan's "
        "versions.",
    )
    version = models.PositiveIntegerField(
        default=1, editable=False, help_text="Numbered from 1 in the order published."
    )
    current = models.BooleanField(
        default=True,
        editable=False,
        help_text="The version new subscribers get; subscribers of earlier versions keep "
        "theirs until moved.",
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    billing_interval = models.CharField(max_length=8, choices=Interval.choices, default="month")
    price = money_field(default=0, help_text="Price per billing interval.")
    currency = currency_field()
    public = models.BooleanField(default=True, help_text="Listed in the API and billing page.")
    active = models.BooleanField(default=True, help_text="Inactive plans take no new customers.")

    rollover_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=0,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Share of unused included credits carried into the next period (0-100).",
    )
    rollover_cap = credit_field(
        null=True, blank=True, help_text="Most credits that may roll over; empty for no cap."
    )
    rollover_expires_after_periods = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        default=1,
        help_text="Rolled-over credits expire after this many periods; empty for never.",
    )

    overage_policy = models.CharField(
        max_length=8,
        choices=OveragePolicy.choices,
        default=OveragePolicy.BLOCK,
        help_text="When credits run out: refuse, or let the balance go below zero down to the "
        "overage limit, billed at period end at the overage unit price.",
    )
    overage_limit = credit_field(
        default=0, help_text="Credits an account may go below zero under the allow policy."
    )
    overage_unit_price = unit_price_field(
        default=0, help_text="Price per overage credit, billed at period end."
    )
    low_balance_threshold = credit_field(
        null=True,
        blank=True,
        help_text="balance.low fires when an account's available credits fall to this "
        "(an account may set its own); empty: only balance.depleted.",
    )
    platform_fee_value = money_field(
        default=0,
        help_text="Standalone value per period of what the price buys besides credits (access, "
        "support); recognised over the period. 0: none. Needs standalone values on the "
        "included credits (docs/revenue.md).",
    )
    trial_days = models.PositiveSmallIntegerField(
        default=0,
        help_text="Days of free trial before the first paid period (an account's first "
        "subscription to this plan only); 0: none. Trial credits: on the included credits.",
    )
    stripe_price = stripe_price_field()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["price", "code", "version"]
        constraints = [
            models.UniqueConstraint(fields=["code", "version"], name="plan_code_version_unique"),
            models.UniqueConstraint(
                fields=["code"], condition=Q(current=True), name="plan_one_current_version"
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="plan_version_gte_1"),
            models.CheckConstraint(condition=Q(price__gte=0), name="plan_price_gte_0"),
            models.CheckConstraint(
                condition=Q(platform_fee_value__gte=0), name="plan_platform_fee_value_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(rollover_percent__gte=0, rollover_percent__lte=100),
                name="plan_rollover_percent_0_100",
            ),
            models.CheckConstraint(
                condition=Q(rollover_cap__isnull=True) | Q(rollover_cap__gte=0),
                name="plan_rollover_cap_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(overage_limit__gte=0), name="plan_overage_limit_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(overage_unit_price__gte=0), name="plan_overage_unit_price_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(overage_policy="allow") | Q(overage_limit=0),
                name="plan_overage_limit_only_when_allowed",
            ),
        ]

    def __str__(self):
        return self.name if self.version == 1 else f"{self.name} (v{self.version})"

    @property
    def label(self):
        """How the API and entitlements name a version: `pro@v3`."""
        return f"{self.code}{VERSION_MARK}{self.version}"

    def clean(self):
        problems = {}
        if self.overage_policy == self.OveragePolicy.BLOCK and self.overage_limit:
            problems["overage_limit"] = (
                "Set the overage policy to 'allow' to give an overage limit."
            )
        if problem := price_problem(self.price, self.currency):
            problems["price"] = problem
        if problems:
            raise ValidationError(problems)


class PlanAllowance(models.Model):
    """Credits of one type that a plan grants at the start of every period."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="allowances")
    credit_type = models.ForeignKey(CreditType, on_delete=models.PROTECT, related_name="+")
    credits_per_period = credit_field()
    standalone_value = money_field(
        null=True,
        blank=True,
        help_text="What these credits would sell for alone, per period: the period's price is "
        "split over a plan's credits (and platform fee) in proportion to these. Give one on "
        "every credit type of the plan, or on none (then: in proportion to credits).",
    )
    trial_credits = credit_field(
        default=0,
        help_text="Credits of this type granted free for the plan's trial; they expire when "
        "it ends.",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["plan", "credit_type__code"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "credit_type"], name="plan_allowance_unique_credit_type"
            ),
            models.CheckConstraint(
                condition=Q(credits_per_period__gte=0), name="plan_allowance_credits_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(trial_credits__gte=0), name="plan_allowance_trial_credits_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(standalone_value__isnull=True) | Q(standalone_value__gte=0),
                name="plan_allowance_standalone_value_gte_0",
            ),
        ]

    def __str__(self):
        return f"{humanize.credits(self.credits_per_period, self.credit_type.code)} / period"

    def clean(self):
        # One row's part of the rules of apps/catalog/pricing.py; the admin's inline and the
        # catalog import check the plan's rows together (values on all or none).
        plan = getattr(self, "plan", None)  # an unsaved plan's rows may have none yet
        if (
            plan is not None
            and plan.platform_fee_value
            and self.standalone_value is None
            and self.credits_per_period
        ):
            raise ValidationError({"standalone_value": NO_VALUES_WITH_FEE})


class PlanFeature(models.Model):
    """How a plan treats a feature: on or off, a per-plan price, a per-period quota."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="plan_features")
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="plan_features")
    enabled = models.BooleanField(default=True)
    credits_per_unit = credit_field(
        null=True,
        blank=True,
        help_text="Overrides the feature's price on this plan; empty keeps it.",
    )
    limit_per_period = credit_field(
        null=True, blank=True, help_text="Most units per period; empty for no quota."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["plan", "feature__code"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "feature"], name="plan_feature_unique"),
            models.CheckConstraint(
                condition=Q(credits_per_unit__isnull=True) | Q(credits_per_unit__gte=0),
                name="plan_feature_credits_per_unit_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(limit_per_period__isnull=True) | Q(limit_per_period__gte=0),
                name="plan_feature_limit_gte_0",
            ),
        ]

    def __str__(self):
        return f"{self.plan.code} · {self.feature.code}"


class CreditPack(models.Model):
    """A one-time purchase of credits."""

    code = code_field()
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    credit_type = models.ForeignKey(CreditType, on_delete=models.PROTECT, related_name="packs")
    credits = credit_field()
    price = money_field()
    currency = currency_field()
    expires_after_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Credits expire this many days after purchase; empty for never.",
    )
    public = models.BooleanField(default=True)
    active = models.BooleanField(default=True)
    stripe_price = stripe_price_field()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["price", "code"]
        constraints = [
            models.CheckConstraint(condition=Q(credits__gt=0), name="credit_pack_credits_gt_0"),
            models.CheckConstraint(condition=Q(price__gte=0), name="credit_pack_price_gte_0"),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        if problem := price_problem(self.price, self.currency):
            raise ValidationError({"price": problem})


class Contract(models.Model):
    """An account's own terms for a dated window (an enterprise deal): each term it sets
    replaces its plan's (or, without a plan, the feature's); every term it leaves empty is
    the plan's. The terms function (apps/usage/sql/terms.sql) applies it to every consume
    path and check, the renewal to included credits, the price and the overage's unit price
    (`apps/catalog/contracts.py`). Outside [starts_at, ends_at) the account is on its plan's
    terms again. At most one per account: it is replaced, not stacked."""

    account = models.OneToOneField(
        "accounts.Account", on_delete=models.CASCADE, related_name="contract"
    )
    starts_at = models.DateTimeField(help_text="From when the contract's terms apply.")
    ends_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the plan's terms apply again (the first moment outside the contract); "
        "empty: until the contract is removed.",
    )
    price = money_field(
        null=True,
        blank=True,
        help_text="Price per billing period: the revenue of each period granted under the "
        "contract, invoiced by hand, or billed through Stripe for a Stripe-backed subscription "
        "(at the contract's own Stripe price). Empty: the plan's price.",
    )
    currency = models.CharField(
        max_length=3,
        blank=True,
        validators=[currency_validator],
        help_text="Currency of the price and the overage unit price; empty: the plan's.",
    )
    overage_policy = models.CharField(
        max_length=8,
        choices=Plan.OveragePolicy.choices,
        blank=True,
        help_text="Empty: the plan's.",
    )
    overage_limit = credit_field(null=True, blank=True, help_text="Empty: the plan's.")
    overage_unit_price = unit_price_field(null=True, blank=True, help_text="Empty: the plan's.")
    stripe_price = stripe_price_field(
        help_text="The Stripe Price a Stripe-backed subscription pays under the contract; set "
        "by the job that bills contracts at Stripe."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(ends_at__gt=models.F("starts_at")),
                name="contract_ends_after_start",
            ),
            models.CheckConstraint(
                condition=Q(price__isnull=True) | ~Q(currency=""), name="contract_price_currency"
            ),
            models.CheckConstraint(
                condition=Q(price__isnull=True) | Q(price__gte=0), name="contract_price_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(overage_limit__isnull=True) | Q(overage_limit__gte=0),
                name="contract_overage_limit_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(overage_unit_price__isnull=True) | Q(overage_unit_price__gte=0),
                name="contract_overage_unit_price_gte_0",
            ),
        ]

    def __str__(self):
        return f"Contract of {self.account}"

    def live_at(self, moment):
        """Whether the contract's terms apply at `moment` (the terms function's rule too).
        The terms are checked by apps/catalog/contracts.py, the one writer of contracts."""
        return self.starts_at <= moment and (self.ends_at is None or moment < self.ends_at)


class ContractFeature(models.Model):
    """A contract's terms for one feature; an empty term is the plan's."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="features")
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="+")
    enabled = models.BooleanField(null=True, blank=True, help_text="Empty: as on the plan.")
    credits_per_unit = credit_field(null=True, blank=True, help_text="Empty: the plan's price.")
    sets_limit = models.BooleanField(
        default=False,
        help_text="The contract sets the quota (the limit below; empty: no quota). Off: the "
        "plan's quota.",
    )
    limit_per_period = credit_field(null=True, blank=True, help_text="Most units per period.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["contract", "feature__code"]
        constraints = [
            models.UniqueConstraint(fields=["contract", "feature"], name="contract_feature_unique"),
            models.CheckConstraint(
                condition=Q(credits_per_unit__isnull=True) | Q(credits_per_unit__gte=0),
                name="contract_feature_credits_per_unit_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(limit_per_period__isnull=True) | Q(limit_per_period__gte=0),
                name="contract_feature_limit_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(sets_limit=True) | Q(limit_per_period__isnull=True),
                name="contract_feature_limit_only_when_set",
            ),
        ]

    def __str__(self):
        return f"{self.contract} · {self.feature.code}"


class ContractAllowance(models.Model):
    """Credits of one type a contract grants each period instead of the plan's."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="allowances")
    credit_type = models.ForeignKey(CreditType, on_delete=models.PROTECT, related_name="+")
    credits_per_period = credit_field()
    history = HistoricalRecords()

    class Meta:
        ordering = ["contract", "credit_type__code"]
        constraints = [
            models.UniqueConstraint(
                fields=["contract", "credit_type"], name="contract_allowance_unique_credit_type"
            ),
            models.CheckConstraint(
                condition=Q(credits_per_period__gte=0), name="contract_allowance_credits_gte_0"
            ),
        ]

    def __str__(self):
        return f"{humanize.credits(self.credits_per_period, self.credit_type.code)} / period"
