"""The ledger: wallets, grants (buckets of credits) and append-only ledger entries.

Every write to a wallet's grants or balance happens in one transaction that first locks the
wallet row; that lock is what serialises concurrent consumes (docs/ledger.md, "Concurrency").
"""

from dataclasses import dataclass

import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models import F, Q

from apps.core import clock, humanize
from apps.core.fields import credit_field, currency_field, money_field, unit_price_field
from apps.core.horizon import BrinOnPostgres, CurrentTransactionId

# What the ledger's triggers do: refuse the statement (restrict_violation, so Django raises
# IntegrityError), naming it.
APPEND_ONLY_REJECT = """
    RAISE EXCEPTION USING
        MESSAGE = 'ledger entries are append-only: ' || TG_OP || ' rejected',
        ERRCODE = 'restrict_violation';
"""


def signed_credit_field(**kwargs):
    return credit_field(validators=[], **kwargs)


class Wallet(models.Model):
    """One per account and credit type. `balance` = Σ grant.remaining − debt = Σ ledger.amount;
    `held` = credits held by open reservations; `available` = balance − held."""

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="wallets"
    )
    credit_type = models.ForeignKey(
        "catalog.CreditType", on_delete=models.PROTECT, related_name="wallets"
    )
    balance = signed_credit_field(default=0)
    held = credit_field(default=0)
    debt = credit_field(default=0, help_text="Overage not yet paid back by a grant.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "credit_type"]
        permissions = [
            ("grant_credits", "Can grant credits to a wallet"),
            ("claw_back_credits", "Can claw back credits and void grants"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["account", "credit_type"], name="wallet_unique"),
            models.CheckConstraint(condition=Q(held__gte=0), name="wallet_held_gte_0"),
            models.CheckConstraint(condition=Q(debt__gte=0), name="wallet_debt_gte_0"),
            # balance = Σ remaining − debt, and remaining is never negative.
            models.CheckConstraint(
                condition=Q(balance__gte=-F("debt")), name="wallet_balance_gte_minus_debt"
            ),
        ]

    def __str__(self):
        return f"{self.account} · {self.credit_type.code}"

    @property
    def available(self):
        return self.balance - self.held


# References of grants made over the API: `api:<the caller's idempotency key>`. No other
# reference (period:…, overage:…, Stripe ids) may start with it, so an API key can never take a
# reference the system will need.
API_REFERENCE_PREFIX = "api:"


@dataclass(frozen=True)
class OrderKey:
    """One column of an order; `nulls_last`: empty values after every other."""

    field: str
    nulls_last: bool = False


# Burn-down order: priority (lower first), then soonest expiry (never-expiring last), then
# oldest. Written once: the ORM ordering, the grant index, the Python sort key and the SQL
# functions' ORDER BY (apps/usage/sql) are all made from it (docs/ledger.md, "Where each rule
# lives").
BURN_DOWN = (OrderKey("priority"), OrderKey("expires_at", nulls_last=True), OrderKey("id"))


def burn_down_ordering():
    """The burn-down order as `order_by()` arguments."""
    return [F(k.field).asc(nulls_last=True) if k.nulls_last else k.field for k in BURN_DOWN]


def burn_down_sql(alias):
    """The burn-down order as a PostgreSQL ORDER BY list over grants named `alias`."""
    return ", ".join(
        f"{alias}.{k.field}" + (" NULLS LAST" if k.nulls_last else "") for k in BURN_DOWN
    )


def burn_down_key(grant):
    """The burn-down order as a Python sort key. A grant not saved yet (no id) sorts after
    the saved ones of its rank: it is the newest."""
    key = []
    for k in BURN_DOWN:
        value = getattr(grant, k.field)
        missing = value is None and (k.nulls_last or k.field == "id")
        key += [missing, value]  # equal `missing` flags never compare None with a value
    return tuple(key)


class CreditGrant(models.Model):
    """A bucket of credits. Burn-down order: priority, soonest expiry (never last), oldest."""

    class Source(models.TextChoices):
        PLAN_PERIOD = "plan_period", "Plan period"
        ROLLOVER = "rollover", "Rollover"
        PURCHASE = "purchase", "Purchase"
        PROMO = "promo", "Promotion"
        MANUAL = "manual", "Manual"
        TRIAL = "trial", "Trial"
        OVERAGE = "overage", "Overage billed"  # settles a period's debt; billed through Stripe

    DEFAULT_PRIORITY = 100
    # Credits given, not sold: reported in credits, never as revenue (basis 0).
    FREE_SOURCES = (Source.PROMO, Source.MANUAL, Source.TRIAL)

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="+")
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="grants")
    source = models.CharField(max_length=16, choices=Source.choices)
    amount = credit_field()
    remaining = credit_field()
    debt_settled = credit_field(
        default=0, help_text="Part of the amount that paid back earlier overage."
    )
    priority = models.PositiveSmallIntegerField(
        default=DEFAULT_PRIORITY, help_text="Lower burns first."
    )
    effective_at = models.DateTimeField(default=clock.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    unit_price = unit_price_field(default=0, help_text="What one credit was paid (cost basis).")
    basis_amount = money_field(
        default=0,
        db_default=0,  # rows written by SQL of their own (scripts, benchmarks) are free
        help_text="What was paid for all of this grant's credits, to the cent (its cost basis; "
        "0 for free credits). Revenue releases it as the credits are used, expire or are taken "
        "back (docs/revenue.md).",
    )
    currency = currency_field()
    plan = models.ForeignKey(
        "catalog.Plan",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The plan whose period (or overage, or rolled-over credits) this is.",
    )
    reference = models.CharField(
        max_length=300,  # an API idempotency key (255) with its prefix, or a rollover's suffix
        null=True,
        blank=True,
        help_text="Idempotency handle of whatever created it (checkout session, period, key).",
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="API key",
        help_text="The API key that made this grant; empty for grants made otherwise.",
    )
    reason = models.TextField(blank=True)
    # The plan's rollover terms as they stood when a plan-period grant was made: whoever
    # closes the grant at its expiry (the renewal job, the expiry job or a consume's lazy
    # expiry) carries min(remaining × percent, cap) into a rollover grant and expires the rest.
    rollover_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Share of what is left at expiry that rolls over; empty: nothing does.",
    )
    rollover_cap = credit_field(null=True, blank=True, help_text="Most that rolls over.")
    rollover_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="When rolled-over credits expire; empty: never."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    voided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = burn_down_ordering()
        constraints = [
            # Keyed by account (not wallet) so one key cannot grant twice in two credit types.
            models.UniqueConstraint(
                fields=["account", "reference"],
                condition=Q(reference__isnull=False),
                name="grant_reference_unique_per_account",
            ),
            models.CheckConstraint(
                condition=Q(api_key__isnull=True)
                | Q(reference__isnull=True)
                | Q(reference__startswith=API_REFERENCE_PREFIX),
                name="grant_api_reference_in_api_namespace",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="grant_amount_gt_0"),
            models.CheckConstraint(condition=Q(remaining__gte=0), name="grant_remaining_gte_0"),
            # Compares stored values only: SQLite evaluates arithmetic here in floats.
            models.CheckConstraint(
                condition=Q(remaining__lte=F("amount")), name="grant_remaining_lte_amount"
            ),
            models.CheckConstraint(condition=Q(debt_settled__gte=0), name="grant_debt_gte_0"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="grant_unit_price_gte_0"),
            models.CheckConstraint(
                condition=Q(basis_amount__gte=0), name="grant_basis_amount_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(rollover_percent__isnull=True)
                | Q(rollover_percent__gt=0, rollover_percent__lte=100),
                name="grant_rollover_percent_0_100",
            ),
        ]
        indexes = [
            # The burn-down scan: only grants with credits left, in spending order (ascending
            # puts NULL expiries last on PostgreSQL, as the burn-down order wants).
            models.Index(
                fields=["wallet", *(k.field for k in BURN_DOWN)],
                condition=Q(remaining__gt=0),
                name="grant_burn_down",
            ),
            models.Index(fields=["expires_at"], condition=Q(remaining__gt=0), name="grant_expiry"),
        ]

    def __str__(self):
        return (
            f"{self.get_source_display()} grant #{self.pk} ({humanize.group_digits(self.remaining)}"
            f" of {humanize.credits(self.amount)} left)"
        )

    def past_due(self, at):
        """Whether the grant's credits can no longer be spent at `at` (its expiry is at or
        before it), whether or not the expiry has been written yet."""
        return self.expires_at is not None and self.expires_at <= at


class LedgerEntry(models.Model):
    """Append-only: database triggers reject UPDATE, DELETE and (PostgreSQL) TRUNCATE.
    Σ amount = wallet balance; Σ held_change = wallet held."""

    class Kind(models.TextChoices):
        GRANT = "grant", "Grant"
        CONSUME = "consume", "Consume"
        EXPIRE = "expire", "Expire"
        ROLLOVER = "rollover", "Rollover"
        VOID = "void", "Void"
        ADJUST = "adjust", "Adjust"
        RESERVE = "reserve", "Reserve"
        RELEASE = "release", "Release"
        OVERAGE = "overage", "Overage"

    # Indexes on this append-only table cost every consume a write each: the account and
    # wallet are indexed by the "newest" indexes below, the rarely set links partially.
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    wallet = models.ForeignKey(
        Wallet, on_delete=models.PROTECT, related_name="ledger_entries", db_index=False
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = signed_credit_field()
    balance_after = signed_credit_field()
    held_change = signed_credit_field(default=0)
    grant = models.ForeignKey(
        CreditGrant, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_entries"
    )
    usage_event = models.ForeignKey(
        "usage.UsageEvent",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_entries",
    )
    reservation = models.ForeignKey(
        "wallets.Reservation",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_entries",
        db_index=False,
    )
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=clock.now)
    # The writing transaction's id (PostgreSQL): revenue posting reads the ledger up to the
    # oldest transaction still running, so an entry that commits late is never skipped
    # (apps/core/horizon.py).
    txid = models.BigIntegerField(null=True, editable=False, db_default=CurrentTransactionId())

    class Meta:
        verbose_name_plural = "ledger entries"
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["account", "-id"], name="ledger_account_newest"),
            models.Index(fields=["wallet", "-id"], name="ledger_wallet_newest"),
            models.Index(fields=["created_at"], name="ledger_created_at"),
            # Summarized as each range of pages fills (autovacuum runs the summaries): an
            # unsummarized range matches every query, and posting would read it whole.
            BrinOnPostgres(fields=["txid"], name="ledger_txid", autosummarize=True),
            models.Index(
                fields=["reservation"],
                condition=Q(reservation__isnull=False),
                name="ledger_reservation",
            ),
            models.Index(
                fields=["acting_user"], condition=Q(acting_user__isnull=False), name="ledger_staff"
            ),
        ]
        # PostgreSQL (django-pgtrigger); SQLite has its own (migrations 0002 and 0003).
        triggers = [
            pgtrigger.Trigger(
                name="append_only",
                when=pgtrigger.Before,
                operation=pgtrigger.Update | pgtrigger.Delete,
                func=APPEND_ONLY_REJECT,
            ),
            pgtrigger.Trigger(
                name="no_truncate",
                when=pgtrigger.Before,
                level=pgtrigger.Statement,
                operation=pgtrigger.Truncate,
                # The test settings let the test runner's flush empty the tables (on their
                # own connections only); no deployment sets creditdesk.ledger_truncate.
                func=f"""
                IF current_setting('creditdesk.ledger_truncate', true) = 'allow' THEN
                    RETURN NULL;
                END IF;
                {APPEND_ONLY_REJECT}
                """,
            ),
        ]

    def __str__(self):
        return f"{self.kind} {humanize.credits(self.amount)} (#{self.pk})"


class Reservation(models.Model):
    class Status(models.TextChoices):
        HELD = "held", "Held"
        COMMITTED = "committed", "Committed"
        RELEASED = "released", "Released"
        EXPIRED = "expired", "Expired"

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="+")
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="reservations")
    feature = models.ForeignKey("catalog.Feature", on_delete=models.PROTECT, related_name="+")
    quantity = credit_field()
    credits_per_unit = credit_field()
    credits_held = credit_field()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.HELD)
    expires_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True)
    usage_event = models.OneToOneField(
        "usage.UsageEvent", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=clock.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="reservation_idempotency_key_unique",
            ),
            models.CheckConstraint(condition=Q(credits_held__gte=0), name="reservation_held_gte_0"),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(status="held"), name="reservation_open"
            ),
        ]

    def __str__(self):
        return f"Reservation #{self.pk} ({self.status})"
