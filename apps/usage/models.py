"""What the SaaS's apps consumed, and per-period counters for quotas."""

from django.db import models
from django.db.models import Q

from apps.core import clock, humanize
from apps.core.fields import credit_field
from apps.core.horizon import BrinOnPostgres


class UsageEvent(models.Model):
    """One successful consume. Its cost and result are snapshotted so that a replay with the
    same idempotency key returns exactly the first answer."""

    # Every B-tree index here costs every consume a write: the account is indexed by
    # usage_account_recent; features and credit types are looked up by event only when one is
    # deleted, which PROTECT refuses anyway (deactivate them instead).
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    feature = models.ForeignKey(
        "catalog.Feature", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    credit_type = models.ForeignKey(
        "catalog.CreditType", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    quantity = credit_field()
    credits_per_unit = credit_field()
    credits = credit_field()
    balance_after = credit_field(validators=[])
    available_after = credit_field(validators=[])
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(default=clock.now)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="usage_event_idempotency_key_unique",
            ),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="usage_event_quantity_gt_0"),
            models.CheckConstraint(condition=Q(credits__gte=0), name="usage_event_credits_gte_0"),
        ]
        indexes = [
            models.Index(fields=["account", "-occurred_at"], name="usage_account_recent"),
            # The usage-per-day report's date range (apps/usage/reports.py). A BRIN keeps each
            # block range's lowest and highest date: next to nothing to keep up per consume.
            BrinOnPostgres(fields=["occurred_at"], name="usage_occurred_at"),
        ]

    def __str__(self):
        return (
            f"{humanize.group_digits(self.quantity)} × feature #{self.feature_id} = "
            f"{humanize.credits(self.credits)}"
        )


class UsageCounter(models.Model):
    """Units of a feature an account used in one period; quotas compare against it."""

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="+")
    feature = models.ForeignKey("catalog.Feature", on_delete=models.PROTECT, related_name="+")
    period_start = models.DateTimeField()
    used = credit_field(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "feature", "period_start"], name="usage_counter_unique"
            ),
        ]

    def __str__(self):
        return (
            f"{humanize.group_digits(self.used)} of feature #{self.feature_id} since "
            f"{self.period_start:%Y-%m-%d}"
        )


# Report pages in the admin's "Reports" section (apps/usage/report_admin.py). Each proxy only
# gives its page an admin URL and its own view permission (granted to Pricing and Finance by
# apps/core/migrations/0006_report_permissions.py); the figures come from apps/usage/reports.py.


class FeatureUsageReport(UsageEvent):
    class Meta:
        proxy = True
        default_permissions = ("view",)
        verbose_name = verbose_name_plural = "usage per feature per day"


class PlanFitReport(UsageEvent):
    class Meta:
        proxy = True
        default_permissions = ("view",)
        verbose_name = verbose_name_plural = "plan fit: credits used ÷ included"


class TopAccountsReport(UsageEvent):
    class Meta:
        proxy = True
        default_permissions = ("view",)
        verbose_name = verbose_name_plural = "top accounts by credits used"


class QuotaReport(UsageEvent):
    class Meta:
        proxy = True
        default_permissions = ("view",)
        verbose_name = verbose_name_plural = "accounts near a quota"


class CreditFlowReport(UsageEvent):
    class Meta:
        proxy = True
        default_permissions = ("view",)
        verbose_name = verbose_name_plural = "credits granted, consumed and expired"
