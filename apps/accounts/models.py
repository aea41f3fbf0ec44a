"""Customers of the SaaS (accounts), the plan each is on (subscriptions), and the API keys
the SaaS's apps use to reach CreditDesk."""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from apps.core import clock
from apps.core.fields import credit_field

EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9_\-.:@]{1,255}$"
external_id_validator = RegexValidator(
    EXTERNAL_ID_PATTERN, "Use 1-255 letters, digits or the characters _ - . : @"
)


class Account(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    external_id = models.CharField(
        max_length=255,
        unique=True,
        validators=[external_id_validator],
        help_text="The SaaS's own id for this customer; the API addresses accounts by it.",
    )
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    suspended_for_nonpayment = models.BooleanField(
        default=False,
        editable=False,
        help_text="Suspended by billing (a subscription past due beyond its grace); paying "
        "the invoice reactivates it. Staff suspensions leave this off.",
    )
    metadata = models.JSONField(default=dict, blank=True)
    low_balance_threshold = credit_field(
        null=True,
        blank=True,
        help_text="balance.low fires when available credits fall to this; empty: the plan's.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["active", "suspended"]), name="account_status_valid"
            ),
        ]

    def __str__(self):
        return self.name or self.external_id


class SubscriptionStatus(models.TextChoices):
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"


# A live subscription puts its account on its plan. Written once: the one-live constraint, the
# querysets and the SQL terms function (apps/usage/sql) are made from it.
LIVE_SUBSCRIPTION_STATUSES = (
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.PAST_DUE,
)


class Subscription(models.Model):
    """An account on a plan. At most one is live per account; ended ones stay as history."""

    # The same objects under the model (callers write `Subscription.LIVE_STATUSES`); the
    # module-level names exist for the constraint below and the SQL context.
    Status = SubscriptionStatus
    LIVE_STATUSES = LIVE_SUBSCRIPTION_STATUSES

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey("catalog.Plan", on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField()
    billing_anchor = models.DateTimeField(
        help_text="Periods are counted from here, so that month ends do not drift "
        "(Jan 31 → Feb 28 → Mar 31)."
    )
    cancel_at_period_end = models.BooleanField(default=False)
    past_due_since = models.DateTimeField(
        null=True, blank=True, help_text="When a renewal payment first failed; empty when paid."
    )
    renewal_held_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Stripe billed a renewal at another price than the plan's "
        "(purchase.mismatch): the renewal job grants no period until an invoice bills the "
        "plan as sold. Empty: renewals as usual.",
    )
    trial_ending_sent_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When trial.ending was recorded for this trial (once per trial).",
    )
    scheduled_plan = models.ForeignKey(
        "catalog.Plan",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="scheduled_subscriptions",
        help_text="Takes over at the next renewal (a change at period end, e.g. a downgrade).",
    )
    stripe_subscription_id = models.CharField(
        max_length=255, null=True, blank=True, unique=True, help_text="Empty for manual plans."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-current_period_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                condition=Q(status__in=list(LIVE_SUBSCRIPTION_STATUSES)),
                name="subscription_one_live_per_account",
            ),
            models.CheckConstraint(
                condition=Q(current_period_end__gt=models.F("current_period_start")),
                name="subscription_period_ends_after_start",
            ),
        ]
        indexes = [models.Index(fields=["status", "current_period_end"])]

    def __str__(self):
        return f"{self.account} on {self.plan}"


class ApiKey(models.Model):
    """A key for the SaaS's apps. The secret is shown once and stored only as a SHA-256 hash:
    keys carry 240 random bits, so a slow password hash would buy nothing and cost every
    request."""

    class Scope(models.TextChoices):
        USAGE_WRITE = "usage:write", "usage:write — check, consume, batch, reservations"
        USAGE_READ = "usage:read", "usage:read — balances, entitlements, ledger, usage"
        ACCOUNTS_WRITE = "accounts:write", "accounts:write — accounts, checkout, billing links"
        GRANTS_WRITE = "grants:write", "grants:write — grant credits (service keys only)"
        WEBHOOKS_WRITE = "webhooks:write", "webhooks:write — webhook endpoints"

    name = models.CharField(max_length=100, help_text="Which app or person uses this key.")
    prefix = models.CharField(
        max_length=16, unique=True, editable=False, help_text="Visible part of the key."
    )
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    account = models.ForeignKey(
        Account,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_keys",
        help_text="Bind the key to one account; empty for a service key (any account).",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests per minute this key may make; empty: the default (API_RATE_LIMIT).",
    )
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(excluded_fields=["last_used_at"])

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_usable(self):
        now = clock.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
