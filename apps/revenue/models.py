"""Revenue: what each grant's credits were paid, and where that money stands each month —
still owed (deferred), earned by use (recognised), lost to expiry (breakage), given back
(claw-backs) or carried with rolled-over credits. docs/revenue.md states the model.

The ledger stays the record; these are its rollups, posted from it by `post_revenue`
(posting.py) and checked against it by `manage.py verify_revenue`."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from apps.core import clock
from apps.core.fields import credit_field, currency_field, money_field
from apps.core.humanize import credits as credits_words
from apps.core.humanize import money


class RevenueLine(models.Model):
    """The credits that moved on one grant in one month, by what happened to them, and the
    cents of its basis that moved with them (`amount`)."""

    class Kind(models.TextChoices):
        # In the order cents are released within a month (allocation.py's `released` is
        # cumulative over it); rolled_over is last because it ends a grant.
        GRANTED = "granted", "Granted (billed)"
        SETTLED = "settled", "Paid back overage (recognised)"
        CONSUMED = "consumed", "Consumed (recognised)"
        CLAWED_BACK = "clawed_back", "Refunded or clawed back"
        EXPIRED = "expired", "Expired (breakage)"
        ROLLED_OVER = "rolled_over", "Rolled over"
        # A pair, equal and opposite, outside the release order: cash refunded on the grant
        # beyond what its claw-backs released of deferred revenue (credits used or expired
        # before the refund) is a refund of revenue already recognised (posting.py).
        REFUND_CASH = "refund_cash", "Refunded beyond deferred"
        REFUND_REVERSAL = "refund_reversal", "Recognised revenue refunded"

    month = models.DateField(help_text="First day of the month the line is reported in.")
    dated_month = models.DateField(
        help_text="First day of the month its ledger entries are dated in: a later month than "
        "this when that month was closed before they were posted (a correction)."
    )
    grant = models.ForeignKey(
        "wallets.CreditGrant", on_delete=models.PROTECT, related_name="revenue_lines"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    credits = credit_field()
    amount = money_field(default=0, help_text="Cents of the grant's basis this line moved.")
    # The grant's dimensions, copied so that a month's report reads one table.
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    credit_type = models.ForeignKey(
        "catalog.CreditType", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    plan = models.ForeignKey(
        "catalog.Plan", on_delete=models.PROTECT, null=True, related_name="+", db_index=False
    )
    source = models.CharField(max_length=16)
    currency = currency_field()

    class Meta:
        ordering = ["month", "grant_id", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["grant", "month", "dated_month", "kind"], name="revenue_line_unique"
            ),
            models.CheckConstraint(
                condition=Q(dated_month__lte=models.F("month")),
                name="revenue_line_dated_not_after_month",
            ),  # fmt: skip
        ]
        indexes = [
            models.Index(fields=["month", "currency"], name="revenue_line_month"),
            models.Index(fields=["account", "month"], name="revenue_line_account"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {credits_words(self.credits)} on grant #{self.grant_id}"


class PostingCursor(models.Model):
    """How far the ledger has been posted into revenue lines: one row."""

    # apps/core/horizon.py: PostgreSQL's snapshot (and the poster's own transaction) at the
    # last run; SQLite's last entry id.
    snapshot = models.TextField(blank=True)
    own_transaction = models.BigIntegerField(null=True)
    last_entry_id = models.BigIntegerField(default=0)
    posted_at = models.DateTimeField(null=True)

    def __str__(self):
        return f"Revenue posted at {self.posted_at}"


class RevenueMonth(models.Model):
    """A month Finance has closed: its figures are frozen (`figures`, as they stood at the
    close); ledger entries dated inside it that are posted later go to the first open month,
    marked with the month they are dated in."""

    month = models.DateField(unique=True, help_text="First day of the month.")
    closed = models.BooleanField(default=False)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    reopened_at = models.DateTimeField(null=True, blank=True)
    reopened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    figures = models.JSONField(default=dict, blank=True, help_text="The month's report at close.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["-month"]
        permissions = [
            ("close_month", "Can close a revenue month"),
            ("reopen_month", "Can reopen a closed revenue month"),
        ]

    def __str__(self):
        return f"{self.month:%B %Y}"


class RatableFee(models.Model):
    """A plan period's platform fee: the part of its price that is not for credits (access,
    support; apps/catalog/pricing.py), billed at the period's start and recognised evenly
    over the period (fees.py). Written by the periods app with the period's grants."""

    subscription = models.ForeignKey(
        "accounts.Subscription", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="+")
    plan = models.ForeignKey("catalog.Plan", on_delete=models.PROTECT, related_name="+")
    currency = currency_field()
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    amount = money_field(help_text="The fee's part of the period's price.")
    cut_at = models.DateTimeField(
        null=True, blank=True,
        help_text="The period ended early here (a plan change, a cancellation): what was not "
        "recognised by then is recognised at once.",
    )  # fmt: skip
    needs_posting = models.BooleanField(
        default=True, help_text="Written or cut since the last posting run (fees.post_fees)."
    )
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["period_start", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "period_start"], name="ratable_fee_once_per_period"
            ),
            models.CheckConstraint(
                condition=Q(period_end__gt=models.F("period_start")),
                name="ratable_fee_period_not_empty",
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="ratable_fee_amount_gte_0"),
        ]
        indexes = [
            models.Index(
                fields=["needs_posting"],
                condition=Q(needs_posting=True),
                name="ratable_fee_to_post",
            ),  # fmt: skip
        ]

    def __str__(self):
        return (f"Platform fee {money(self.amount, self.currency)} for the period from "
                f"{self.period_start:%Y-%m-%d}")  # fmt: skip


class FeeLine(models.Model):
    """What one platform fee billed or recognised in a month: posted from the fee by the
    posting run (fees.post_fees), like the grants' revenue lines, so that a closed month's
    fees stay as they were closed and a fee written or cut later moves an open month."""

    class Kind(models.TextChoices):
        BILLED = "billed", "Billed"
        RECOGNISED = "recognised", "Recognised"

    month = models.DateField(help_text="First day of the month the line is reported in.")
    dated_month = models.DateField(
        help_text="First day of the month the amount belongs to: earlier than `month` when "
        "that month was closed before the fee was written or cut (a correction)."
    )
    fee = models.ForeignKey(RatableFee, on_delete=models.PROTECT, related_name="lines")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = money_field()
    # The fee's dimensions, copied so that a month's report reads one table.
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    plan = models.ForeignKey(
        "catalog.Plan", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    currency = currency_field()

    class Meta:
        ordering = ["month", "fee_id", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["fee", "month", "dated_month", "kind"], name="fee_line_unique"
            ),
            models.CheckConstraint(
                condition=Q(dated_month__lte=models.F("month")),
                name="fee_line_dated_not_after_month",
            ),  # fmt: skip
        ]
        indexes = [models.Index(fields=["month", "currency"], name="fee_line_month")]

    def __str__(self):
        kind = self.get_kind_display().lower()
        return f"Platform fee {kind}: {money(self.amount, self.currency)}"


class CashRefund(models.Model):
    """Money paid back on a grant's purchase (a Stripe refund or chargeback; a won dispute's
    return less what its returned credits bill again): written by billing in the refund's
    transaction, posted by the posting run into the grant's refund lines."""

    grant = models.ForeignKey(
        "wallets.CreditGrant", on_delete=models.PROTECT, related_name="cash_refunds"
    )
    amount = money_field(
        validators=[], help_text="Paid back (negative: money returned to us, a dispute won)."
    )
    currency = currency_field()
    reason = models.CharField(max_length=255)
    needs_posting = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["pk"]
        indexes = [
            models.Index(
                fields=["needs_posting"],
                condition=Q(needs_posting=True),
                name="cash_refund_to_post",
            ),  # fmt: skip
        ]

    def __str__(self):
        return f"Refunded {money(self.amount, self.currency)} on grant #{self.grant_id}"
