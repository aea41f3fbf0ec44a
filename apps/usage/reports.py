"""Usage reports for Pricing and Finance: how customers use the product, to size plans
(docs/reports.md). Read-only selectors, keyword-only; every figure is aggregated by the
database (GROUP BY and SUM/COUNT over the ORM), never by looping over events here. The admin
pages in apps/usage/report_admin.py only draw what these return.

Credits "used" are what the ledger booked against usage: consume entries plus overage entries
(a consume that ran past zero books the rest as overage), read from the ledger so that they
match the wallets to the credit. Units come from the usage events, which carry quantities.
Months and days are UTC.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import (
    Case,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate, TruncMonth

from apps.accounts.models import Subscription
from apps.catalog.models import Plan, PlanFeature
from apps.core.decimals import CREDIT_DIGITS, CREDIT_PLACES
from apps.wallets.models import LedgerEntry

from .models import UsageCounter, UsageEvent

CREDITS = DecimalField(max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)
QUANTUM = Decimal(1).scaleb(-CREDIT_PLACES)
USED_KINDS = (LedgerEntry.Kind.CONSUME, LedgerEntry.Kind.OVERAGE)
NEAR_QUOTA = Decimal("0.8")  # "near a quota": used ≥ 80 % of limit_per_period
FIT_BUCKETS = 11  # used ÷ included: 0–10 %, 10–20 %, …, 90–100 %, then > 100 %
FIT_LABELS = tuple(f"{n * 10}–{n * 10 + 10} %" for n in range(10)) + ("> 100 %",)
TOP_ACCOUNTS = 20
FLOW_MONTHS = 12


def _exact(value):
    """A summed credit column as an exact Decimal (SQLite may hand back a float)."""
    if value is None:
        return Decimal(0).quantize(QUANTUM)
    return Decimal(str(value)).quantize(QUANTUM)


def month_start(day):
    return day.replace(day=1)


def add_months(month, n):
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def _moment(day):
    return datetime.combine(day, time.min, tzinfo=UTC)


def _month_range(month):
    """[start, end) of the UTC month holding `month`."""
    first = month_start(month)
    return _moment(first), _moment(add_months(first, 1))


def _used():
    """Credits used, positive: the negated sum of consume and overage amounts."""
    return Sum(-F("amount"), filter=Q(kind__in=USED_KINDS), output_field=CREDITS)


# --- a. Usage per feature per day ------------------------------------------------------------


@dataclass(frozen=True)
class FeatureDay:
    day: date
    feature_code: str
    feature_name: str
    unit_name: str
    credits: Decimal
    units: Decimal


def feature_usage_by_day(*, start, end, credit_type=None):
    """Credits and units of each feature per UTC day from `start` to `end` (dates,
    inclusive), optionally of one credit type; days without usage are absent.

    Index: usage_occurred_at, a BRIN on occurred_at (PostgreSQL; a plain index elsewhere):
    the date range reads only the block ranges that can hold it. A BRIN costs a consume next
    to nothing (a B-tree would cost every consume a write, apps/usage/models.py), and events
    arrive roughly in occurred_at order on this append-mostly table, which is what a BRIN
    needs."""
    events = UsageEvent.objects.filter(
        occurred_at__gte=_moment(start), occurred_at__lt=_moment(end + timedelta(days=1))
    )
    if credit_type is not None:
        events = events.filter(credit_type=credit_type)
    rows = (
        events.annotate(day=TruncDate("occurred_at", tzinfo=UTC))
        .values("day", "feature__code", "feature__name", "feature__unit_name")
        .annotate(credits=Sum("credits"), units=Sum("quantity"))
        .order_by("day", "feature__code")
    )
    return [
        FeatureDay(
            day=row["day"],
            feature_code=row["feature__code"],
            feature_name=row["feature__name"],
            unit_name=row["feature__unit_name"],
            credits=_exact(row["credits"]),
            units=_exact(row["units"]),
        )
        for row in rows
    ]


# --- b. Plan fit: credits used ÷ included ----------------------------------------------------


@dataclass(frozen=True)
class PlanFit:
    plan_code: str
    plan_name: str
    credit_type_code: str
    counts: tuple  # accounts per FIT_LABELS bucket

    @property
    def accounts(self):
        return sum(self.counts)


def plan_fit(*, month):
    """For each plan and credit type it includes: how many accounts on it used what share of
    their included credits in `month` — a histogram over FIT_LABELS. An account counts under
    the plan of its live subscription (accounts with none are left out); a yearly plan's
    allowance is spread over twelve months.

    Index: the used credits are one correlated SUM per subscription over the account's ledger
    entries, read through ledger_account_newest (account, -id) and filtered by month."""
    since, until = _month_range(month)
    used = (
        LedgerEntry.objects.filter(
            account=OuterRef("account"),
            wallet__credit_type=OuterRef("credit_type"),
            created_at__gte=since,
            created_at__lt=until,
            kind__in=USED_KINDS,
        )
        .order_by()
        .values("account")
        .annotate(total=_used())
        .values("total")
    )
    rows = (
        Subscription.objects.filter(status__in=Subscription.LIVE_STATUSES)
        .annotate(
            credit_type=F("plan__allowances__credit_type"),
            credit_type_code=F("plan__allowances__credit_type__code"),
            included=Case(
                When(
                    plan__billing_interval=Plan.Interval.YEAR,
                    then=F("plan__allowances__credits_per_period") / Value(12),
                ),
                default=F("plan__allowances__credits_per_period"),
                output_field=CREDITS,
            ),
        )
        .filter(included__gt=0)
        .annotate(used=Coalesce(Subquery(used, output_field=CREDITS), Value(Decimal(0))))
        .annotate(
            bucket=Case(
                When(used__gt=F("included"), then=Value(10)),
                *[
                    When(used__gte=F("included") * Value(Decimal(n) / 10), then=Value(n))
                    for n in range(9, 0, -1)
                ],
                default=Value(0),
                output_field=IntegerField(),
            )
        )
        .values("plan__code", "plan__name", "credit_type_code", "bucket")
        .annotate(accounts=Count("id"))
        .order_by("plan__code", "credit_type_code", "bucket")
    )
    fits = {}
    for row in rows:  # one row per plan, credit type and bucket: at most 11 per plan
        key = (row["plan__code"], row["plan__name"], row["credit_type_code"])
        fits.setdefault(key, [0] * FIT_BUCKETS)[row["bucket"]] = row["accounts"]
    return [
        PlanFit(plan_code=code, plan_name=name, credit_type_code=ct, counts=tuple(counts))
        for (code, name, ct), counts in fits.items()
    ]


# --- c. Top accounts by credits used ---------------------------------------------------------


@dataclass(frozen=True)
class AccountUsage:
    account_id: int
    external_id: str
    name: str
    credits: Decimal


def top_accounts(*, month, credit_type=None, limit=TOP_ACCOUNTS):
    """The `limit` accounts that used the most credits in `month`, optionally of one credit
    type, most first.

    Index: ledger_created_at (created_at) narrows the ledger to the month."""
    since, until = _month_range(month)
    entries = LedgerEntry.objects.filter(
        created_at__gte=since, created_at__lt=until, kind__in=USED_KINDS
    )
    if credit_type is not None:
        entries = entries.filter(wallet__credit_type=credit_type)
    rows = (
        entries.values("account", "account__external_id", "account__name")
        .annotate(used=_used())
        .filter(used__gt=0)
        .order_by("-used", "account")[:limit]
    )
    return [
        AccountUsage(
            account_id=row["account"],
            external_id=row["account__external_id"],
            name=row["account__name"],
            credits=_exact(row["used"]),
        )
        for row in rows
    ]


# --- d. Accounts at or near a quota ----------------------------------------------------------


@dataclass(frozen=True)
class QuotaUse:
    account_id: int
    external_id: str
    name: str
    feature_code: str
    unit_name: str
    used: Decimal
    limit: Decimal
    period_start: datetime

    @property
    def share(self):
        """Used ÷ limit, e.g. Decimal("0.85")."""
        return self.used / self.limit


def near_quota(*, threshold=NEAR_QUOTA):
    """Accounts whose usage counter for this period (their live subscription's current
    period) is at or above `threshold` × the plan's limit_per_period, fullest first.

    Index: the counters table has one row per account, quota feature and period (far fewer
    than events) and no index on period_start; the query reads it and matches each counter to
    its account's live subscription (subscription's one-live-per-account constraint index)
    and the plan feature (plan_feature_unique). If old periods' counters pile up, an index on
    usage_counter.period_start would serve this report; it is not added here."""
    live = Subscription.objects.filter(
        account=OuterRef("account"), status__in=Subscription.LIVE_STATUSES
    )
    limit = PlanFeature.objects.filter(
        plan=OuterRef("plan"), feature=OuterRef("feature"), enabled=True
    ).values("limit_per_period")[:1]
    rows = (
        UsageCounter.objects.annotate(
            current_start=Subquery(live.values("current_period_start")[:1]),
            plan=Subquery(live.values("plan")[:1]),
        )
        .filter(period_start=F("current_start"))
        .annotate(limit=Subquery(limit, output_field=CREDITS))
        .filter(limit__gt=0, used__gte=F("limit") * Value(threshold))
        .annotate(share=ExpressionWrapper(F("used") / F("limit"), output_field=CREDITS))
        .values(
            "account",
            "account__external_id",
            "account__name",
            "feature__code",
            "feature__unit_name",
            "used",
            "limit",
            "period_start",
        )
        .order_by("-share", "account", "feature__code")
    )
    return [
        QuotaUse(
            account_id=row["account"],
            external_id=row["account__external_id"],
            name=row["account__name"],
            feature_code=row["feature__code"],
            unit_name=row["feature__unit_name"],
            used=_exact(row["used"]),
            limit=_exact(row["limit"]),
            period_start=row["period_start"],
        )
        for row in rows
    ]


# --- e. Credits granted, consumed and expired per month --------------------------------------


@dataclass(frozen=True)
class MonthFlow:
    month: date
    granted: Decimal
    consumed: Decimal
    expired: Decimal


def credit_flow(*, until_month, months=FLOW_MONTHS):
    """Per credit type, for the `months` months ending with `until_month` (oldest first, every
    month present): credits granted (grant entries), consumed (consume and overage entries)
    and expired (expire entries), from the ledger. `{credit_type_code: [MonthFlow, ...]}`.
    Rollovers, voids and adjustments are not counted.

    Index: ledger_created_at (created_at) narrows the ledger to the months."""
    first = add_months(month_start(until_month), 1 - months)
    since, until = _moment(first), _month_range(until_month)[1]
    Kind = LedgerEntry.Kind
    rows = (
        LedgerEntry.objects.filter(
            created_at__gte=since,
            created_at__lt=until,
            kind__in=[Kind.GRANT, Kind.EXPIRE, *USED_KINDS],
        )
        .annotate(month=TruncMonth("created_at", tzinfo=UTC))
        .values("wallet__credit_type__code", "month")
        .annotate(
            granted=Sum("amount", filter=Q(kind=Kind.GRANT)),
            consumed=_used(),
            expired=Sum(-F("amount"), filter=Q(kind=Kind.EXPIRE), output_field=CREDITS),
        )
        .order_by("wallet__credit_type__code", "month")
    )
    found = {}
    for row in rows:  # one row per credit type and month
        month = row["month"]
        month = month.date() if isinstance(month, datetime) else month
        found.setdefault(row["wallet__credit_type__code"], {})[month] = row
    calendar = [add_months(first, n) for n in range(months)]
    empty = {"granted": None, "consumed": None, "expired": None}
    return {
        code: [
            MonthFlow(
                month=month,
                granted=_exact(by_month.get(month, empty)["granted"]),
                consumed=_exact(by_month.get(month, empty)["consumed"]),
                expired=_exact(by_month.get(month, empty)["expired"]),
            )
            for month in calendar
        ]
        for code, by_month in found.items()
    }
