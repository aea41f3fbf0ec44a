from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.db import connection
from django.db.models import DecimalField, F, Q, Sum
from django.db.models.functions import TruncDate
from django.utils.dateparse import parse_datetime

from apps.catalog.models import CreditType, Feature
from apps.core import clock
from apps.core.decimals import CREDIT_DIGITS, CREDIT_PLACES
from apps.core.errors import (
    AccountSuspended,
    DomainError,
    FeatureNotEnabled,
    FeatureNotFound,
    InsufficientCredits,
    QuotaExceeded,
)
from apps.wallets.ledger import cost_of

from . import fast_path
from .entitlement import Counters, parse_quantity, resolve_terms
from .models import UsageEvent
from .outcomes import ALLOWED, INVALID_COST
from .sql import CHECK, TERMS

CREDITS = DecimalField(max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)
CREDIT_QUANTUM = Decimal("0.000001")
ZERO = Decimal(0).quantize(CREDIT_QUANTUM)


@dataclass(frozen=True)
class FeatureTerms:
    """What a feature costs one account right now: its contract's terms, else its plan
    version's, else the feature's own."""

    feature: Feature
    enabled: bool
    credits_per_unit: Decimal
    limit_per_period: Decimal | None
    period_start: datetime | None
    overdraft_limit: Decimal
    source: str  # where the terms come from: "contract", "plan:pro@v3", "feature"

    @property
    def credit_type_id(self):
        return self.feature.credit_type_id


def _terms_query(pairs, at=None):
    """The terms function's query for `pairs` at `at` (default: the clock's now), with its
    parameters: a call of the installed function on PostgreSQL, its body on SQLite (rendered
    from the same file, each request row carrying the moment). Only our own constants and
    placeholders are formatted into the text."""
    accounts, codes = [a for a, _ in pairs], [c for _, c in pairs]
    now = at or clock.now()
    if connection.vendor == "postgresql":
        call = f"SELECT * FROM {TERMS.sql_name}(%s::bigint[], %s::text[], %s)"  # noqa: S608
        return call, [accounts, codes, now]
    values = ", ".join(["(%s, %s, %s, %s)"] * len(pairs))
    columns = "column1 AS account_id, column2 AS feature_code, column3 AS ord, column4 AS now_at"
    requests = f"(SELECT {columns} FROM (VALUES {values})) AS r"  # noqa: S608
    stored = connection.ops.adapt_datetimefield_value(now)  # as SQLite stores datetimes
    params = [v for n, (a, c) in enumerate(pairs, 1) for v in (a, c, n, stored)]
    return TERMS.body({"requests": requests, "now": "r.now_at"}), params


def _credits(value):
    """A numeric column from a raw query: Decimal on PostgreSQL, float or int on SQLite."""
    if value is None:
        return None
    if not isinstance(value, Decimal):
        value = Decimal(str(value))
    return value.quantize(CREDIT_QUANTUM)


def _moment(value):
    """A timestamp column from a raw query: aware on PostgreSQL, naive UTC on SQLite."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else parse_datetime(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def terms_for(*, pairs, at=None):
    """Terms for each `(account_id, feature_code)` pair whose feature is active, in one query
    however many pairs: `{(account_id, code): FeatureTerms}`; at `at` (contracts live then;
    default now). The rules are the terms function's (apps/usage/sql/terms.sql); this only
    maps its columns."""
    pairs = sorted(pairs)
    if not pairs:
        return {}
    sql, params = _terms_query(pairs, at)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    terms = {}
    for (_, account_id, code, _, feature_id, kind, feature_price, credit_type_id,
         credit_type_code, source, enabled, credits_per_unit, limit, period_start,
         overdraft_limit) in rows:  # fmt: skip
        if feature_id is None:
            continue  # no active feature has that code
        credit_type = (
            CreditType(pk=credit_type_id, code=credit_type_code) if credit_type_id else None
        )
        feature = Feature(pk=feature_id, code=code, kind=kind, credit_type=credit_type,
                          credits_per_unit=_credits(feature_price))  # fmt: skip
        terms[(account_id, code)] = FeatureTerms(
            feature=feature,
            enabled=bool(enabled),
            credits_per_unit=_credits(credits_per_unit),
            limit_per_period=_credits(limit),
            period_start=_moment(period_start),
            overdraft_limit=_credits(overdraft_limit),
            source=source,
        )
    return terms


def overdraft_limit(*, account):
    """The overdraft the account's terms allow (its contract's or plan's; the same for every
    credit type), from the terms function's rule: its row for no feature carries the
    account-wide terms alone."""
    sql, params = _terms_query([(account.pk, None)])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return _credits(row[-1])


def feature_terms(*, account, feature_codes):
    """Terms of each active feature among `feature_codes` for one account: `{code: terms}`."""
    found = terms_for(pairs={(account.pk, code) for code in feature_codes})
    return {code: t for (_, code), t in found.items()}


@dataclass(frozen=True)
class CheckResult:
    allowed: bool
    reason: str | None
    credits_required: Decimal | None
    credit_type: str | None
    available: Decimal | None
    details: dict


SPENDABLE_SQL = """
SELECT w.balance, w.held,
       COALESCE(SUM(g.remaining) FILTER (WHERE g.expires_at <= %s), 0)
FROM wallets_wallet w
LEFT JOIN wallets_creditgrant g ON g.wallet_id = w.id AND g.remaining > 0
WHERE w.account_id = %s AND w.credit_type_id = %s
GROUP BY w.id, w.balance, w.held
"""


def spendable_credits(*, account_id, credit_type_id):
    """Available credits of one wallet now: balance − held, less what grants past their expiry
    still hold before the expiry job writes it off. One fixed statement (check's hot path)."""
    with connection.cursor() as cursor:
        cursor.execute(SPENDABLE_SQL, [clock.now(), account_id, credit_type_id])
        row = cursor.fetchone()
    if row is None:
        return ZERO
    balance, held, expired = (_credits(v) for v in row)
    return balance - expired - held


CHECK_CALL = f"SELECT * FROM {CHECK.sql_name}(%s, %s, %s, %s)"  # noqa: S608 (our constant)


def check(*, account, feature, quantity=1):
    """Would `consume` succeed now? Writes nothing and takes no locks: the answer can be
    overtaken by a concurrent consume, which is why consume checks again. For an on/off
    feature, whether the account may use it (nothing is charged: no cost, no balance). On
    PostgreSQL one call of the check function (apps/usage/sql/check.sql); elsewhere the same
    rules here."""
    quantity = parse_quantity(quantity)
    if fast_path.enabled():
        with connection.cursor() as cursor:
            cursor.execute(CHECK_CALL, [account.pk, feature, quantity, clock.now()])
            return check_answer(feature, quantity, *cursor.fetchone())
    terms = feature_terms(account=account, feature_codes=[feature])
    t = terms.get(feature)
    if t is None:
        raise FeatureNotFound.of(feature)
    if t.feature.kind != Feature.Kind.METERED:
        reason = None
        if account.status != account.Status.ACTIVE:
            reason = "account_suspended"
        elif not t.enabled:
            reason = "feature_not_enabled"
        return CheckResult(reason is None, reason, None, None, None, {})
    credit_type = t.feature.credit_type.code if t.feature.credit_type_id else None
    try:
        resolve_terms(account, terms, feature)
        credits = cost_of(quantity, t.credits_per_unit)
        Counters.load({account.pk: terms}, lock=False).check(account.pk, t, quantity)
    except FeatureNotFound:
        raise
    except DomainError as error:
        if error.code == "validation_error":
            raise
        return CheckResult(False, error.code, None, credit_type, None, error.details)
    available = spendable_credits(account_id=account.pk, credit_type_id=t.credit_type_id)
    enough = credits <= available + t.overdraft_limit
    return _funds_answer(enough, credits, credit_type, available)


def _funds_answer(enough, credits, credit_type, available):
    if enough:
        return CheckResult(True, None, credits, credit_type, available, {})
    details = {"credits_required": credits, "available": available, "credit_type": credit_type}
    return CheckResult(False, InsufficientCredits.code, credits, credit_type, available, details)


def check_answer(feature, quantity, outcome, kind, credit_type, credits_per_unit, credits,
                 available, limit, used):  # fmt: skip
    """The CheckResult (or the error) for a row of the check function: the same as the
    Python rules above give."""
    if outcome == FeatureNotFound.code:
        raise FeatureNotFound.of(feature)
    if outcome == INVALID_COST:
        cost_of(quantity, _credits(credits_per_unit))  # words the error as the Python path
        raise AssertionError("the database and Python disagree on a cost")
    allowed = outcome == ALLOWED
    if kind != Feature.Kind.METERED:
        return CheckResult(allowed, None if allowed else outcome, None, None, None, {})
    if outcome in (ALLOWED, InsufficientCredits.code):
        return _funds_answer(allowed, _credits(credits), credit_type, _credits(available))
    errors = {
        AccountSuspended.code: lambda: AccountSuspended(),
        FeatureNotEnabled.code: lambda: FeatureNotEnabled.of(feature),
        QuotaExceeded.code: lambda: QuotaExceeded.of(
            feature=feature, limit=_credits(limit), used=_credits(used)
        ),
    }
    if outcome not in errors:
        raise AssertionError(f"the check function returned {outcome!r}")
    return CheckResult(False, outcome, None, credit_type, None, errors[outcome]().details)


def entitlements(*, account):
    """Every active feature as the account's terms set it (contract, plan version, or the
    feature's own), with this period's use: `[(FeatureTerms, used_or_None)]`."""
    codes = list(
        Feature.objects.filter(active=True).order_by("code").values_list("code", flat=True)
    )
    terms = feature_terms(account=account, feature_codes=codes)
    counters = Counters.load({account.pk: terms}, lock=False)
    rows = []
    for code in codes:
        t = terms.get(code)
        if t is None:
            continue
        used = counters.used(account.pk, t) if t.limit_per_period is not None else None
        rows.append((t, used))
    return rows


def usage_page(*, account, feature=None, since=None, until=None, after=None, limit=1000):
    """Usage events, newest first (by when they occurred, then id); `after`: the
    (occurred_at, id) of the previous page's last event, to continue after it (a keyset: a
    page stays right while new events arrive). Returns `(events, more)`."""
    events = _usage(UsageEvent.objects.filter(account=account), feature, since, until)
    if after is not None:
        occurred_at, pk = after
        events = events.filter(
            Q(occurred_at__lt=occurred_at) | Q(occurred_at=occurred_at, pk__lt=pk)
        )
    page = list(
        events.select_related("feature", "credit_type").order_by("-occurred_at", "-id")[: limit + 1]
    )
    return page[:limit], len(page) > limit


def usage_totals(*, account, group_by, feature=None, since=None, until=None):
    """Σ quantity and credits per day (UTC) or per feature, oldest day / first code first."""

    events = _usage(UsageEvent.objects.filter(account=account), feature, since, until)
    key = TruncDate("occurred_at", tzinfo=UTC) if group_by == "day" else F("feature__code")
    return list(
        events.annotate(group=key)
        .values("group")
        .annotate(quantity=Sum("quantity"), credits=Sum("credits"))
        .order_by("group")
    )


def credits_used_by_day(*, account, since):
    """Σ credits per (UTC day, credit type code) since `since`: the billing page's chart, one
    series per credit type (credits of different types do not add up)."""

    return list(
        UsageEvent.objects.filter(account=account, occurred_at__gte=since)
        .annotate(day=TruncDate("occurred_at", tzinfo=UTC), code=F("credit_type__code"))
        .values("day", "code")
        .annotate(credits=Sum("credits"))
        .order_by("code", "day")
    )


def _usage(events, feature, since, until):
    if feature:
        events = events.filter(feature__code=feature)
    if since:
        events = events.filter(occurred_at__gte=since)
    if until:
        events = events.filter(occurred_at__lt=until)
    return events
