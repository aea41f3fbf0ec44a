"""Revenue figures, read from the posted lines (never from the ledger itself, which is
what keeps a month's report fast at any ledger size): per month and currency, optionally
broken down by credit type, plan or account (docs/revenue.md, "The monthly report")."""

from dataclasses import asdict, dataclass, fields
from decimal import Decimal

from django.db.models import Min, Q, Sum

from apps.core.decimals import credit_sum, money_sum
from apps.wallets.models import CreditGrant

from .fees import fee_series
from .models import FeeLine, RevenueLine, RevenueMonth
from .months import next_month

Line = RevenueLine.Kind
ROLLED_IN = Q(kind=Line.GRANTED, source=CreditGrant.Source.ROLLOVER)
BILLED = Q(kind=Line.GRANTED) & ~Q(source=CreditGrant.Source.ROLLOVER)
OUT = ~Q(kind=Line.GRANTED)

# Each figure of a month: the sum of lines it is made of (money in `amount`, credits in
# `credits`). Defined once: the report, the series, the statement, the close and
# verify_revenue all read these.
MONEY = {
    "billed": BILLED,
    # Cash refunded beyond deferred revenue is taken out of recognised revenue (REFUND_CASH
    # and REFUND_REVERSAL are equal and opposite: deferred does not move).
    "recognised": Q(kind__in=[Line.CONSUMED, Line.SETTLED, Line.REFUND_REVERSAL]),
    "breakage": Q(kind=Line.EXPIRED),
    "refunded": Q(kind__in=[Line.CLAWED_BACK, Line.REFUND_CASH]),
    "rolled_over": Q(kind=Line.ROLLED_OVER),
    "rolled_in": ROLLED_IN,
}
CREDITS = {
    "credits_granted": BILLED,
    "credits_free": BILLED & Q(amount=0),
    "credits_used": Q(kind__in=[Line.CONSUMED, Line.SETTLED]),
    "credits_expired": Q(kind=Line.EXPIRED),
    "credits_clawed_back": Q(kind=Line.CLAWED_BACK),
    "credits_rolled_over": Q(kind=Line.ROLLED_OVER),
}
DIMENSIONS = {
    None: (),
    "credit_type": ("credit_type_id",),
    "plan": ("plan_id",),
    "account": ("account_id",),
}
ZERO = Decimal(0)


@dataclass
class Figures:
    """One month of one currency (and one credit type, plan or account when broken down).
    Identity: opening_deferred + billed - refunded = recognised + breakage + closing_deferred
    (rolled_over and rolled_in move deferred revenue between grants and cancel out)."""

    opening_deferred: Decimal = ZERO
    billed: Decimal = ZERO
    recognised: Decimal = ZERO
    breakage: Decimal = ZERO
    refunded: Decimal = ZERO
    rolled_over: Decimal = ZERO
    rolled_in: Decimal = ZERO
    closing_deferred: Decimal = ZERO
    opening_credits: Decimal = ZERO  # credits granted and not yet used, expired or taken back
    credits_granted: Decimal = ZERO
    credits_free: Decimal = ZERO  # of those, given (basis 0): never revenue
    credits_used: Decimal = ZERO
    credits_expired: Decimal = ZERO
    credits_clawed_back: Decimal = ZERO
    credits_rolled_over: Decimal = ZERO
    closing_credits: Decimal = ZERO
    # The plans' platform fees (fees.py), beside the credits' figures: by plan, never by
    # credit type or account. Their own identity: fees deferred at the last month's end +
    # fees_billed - fees_recognised = fees_deferred (at this month's end).
    fees_billed: Decimal = ZERO
    fees_recognised: Decimal = ZERO
    fees_deferred: Decimal = ZERO

    def close(self):
        """Set the closing balances from the opening ones and the month's movements."""
        self.closing_deferred = (
            self.opening_deferred + self.billed + self.rolled_in
            - self.recognised - self.breakage - self.refunded - self.rolled_over
        )  # fmt: skip
        self.closing_credits = (
            self.opening_credits + self.credits_granted - self.credits_used
            - self.credits_expired - self.credits_clawed_back
        )  # fmt: skip
        return self

    def as_json(self):
        return {k: str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data):
        # Months closed before fees were fields hold them under "extra".
        data = {**data.get("extra", {}), **data}
        return cls(**{f.name: Decimal(data.get(f.name, "0")) for f in fields(cls)})


def _lines(*, currency=None, dimension=None, value=None, filters=None):
    lines = RevenueLine.objects.all()
    if currency:
        lines = lines.filter(currency=currency)
    if dimension and value is not None:
        lines = lines.filter(**{DIMENSIONS[dimension][0]: value})
    return lines.filter(**(filters or {}))


def _key(row, dimension):
    return (row["currency"], *(row[name] for name in DIMENSIONS[dimension]))


def _balances(lines, dimension):
    """Deferred money and outstanding credits of `lines` (all before some month), by key."""
    group = ("currency", *DIMENSIONS[dimension])
    rows = lines.values(*group).annotate(
        granted=Sum("amount", filter=Q(kind=Line.GRANTED)),
        out=Sum("amount", filter=OUT),
        credits_in=Sum("credits", filter=BILLED),
        credits_out=Sum("credits", filter=OUT & ~Q(kind=Line.ROLLED_OVER)),
    )
    return {
        _key(row, dimension): (
            money_sum(row["granted"]) - money_sum(row["out"]),
            credit_sum(row["credits_in"]) - credit_sum(row["credits_out"]),
        )
        for row in rows.order_by()
    }


def _movements(lines, dimension, *, by_month=False):
    group = ("currency", *DIMENSIONS[dimension], *(("month",) if by_month else ()))
    sums = {name: Sum("amount", filter=q) for name, q in MONEY.items()}
    sums |= {name: Sum("credits", filter=q) for name, q in CREDITS.items()}
    return lines.values(*group).annotate(**sums).order_by()


def series(*, first, last, currency=None, dimension=None, value=None, filters=None):
    """{month: {key: Figures}} for every month from `first` to `last`; a key is
    (currency,) or (currency, dimension value). Two queries whatever the span."""
    lines = _lines(currency=currency, dimension=dimension, value=value, filters=filters)
    opening = _balances(lines.filter(month__lt=first), dimension)
    moved = {}
    for row in _movements(lines.filter(month__gte=first, month__lte=last), dimension,
                          by_month=True):  # fmt: skip
        moved.setdefault(row["month"], {})[_key(row, dimension)] = row
    fees = {}
    if dimension != "credit_type" and not filters:  # fees belong to plans, not credit types
        fees = fee_series(first=first, last=last, currency=currency,
                          group=(DIMENSIONS[dimension] or (None,))[0], value=value)  # fmt: skip
    result, month = {}, first
    while month <= last:
        figures = {}
        for key in set(opening) | set(moved.get(month, {})):
            deferred, outstanding = opening.get(key, (ZERO, ZERO))
            row = moved.get(month, {}).get(key, {})
            f = Figures(opening_deferred=deferred, opening_credits=outstanding)
            for name in MONEY:
                setattr(f, name, money_sum(row.get(name)))
            for name in CREDITS:
                setattr(f, name, credit_sum(row.get(name)))
            figures[key] = f.close()
            opening[key] = (f.closing_deferred, f.closing_credits)
        _add_fees(figures, fees.get(month, {}), dimension)
        result[month] = figures
        month = next_month(month)
    return result


FEES = ("fees_billed", "fees_recognised", "fees_deferred")


def _add_fees(figures, fees, dimension):
    for (currency, value), amounts in fees.items():
        f = figures.setdefault((currency, value) if dimension else (currency,), Figures())
        for name, amount in zip(FEES, amounts, strict=True):
            setattr(f, name, getattr(f, name) + amount)


def month_figures(*, month, currency=None, dimension=None, value=None):
    """{key: Figures} for one month."""
    return series(first=month, last=month, currency=currency, dimension=dimension,
                  value=value)[month]  # fmt: skip


def closed_months():
    return {m.month: m for m in RevenueMonth.objects.filter(closed=True)}


def grants_behind(*, month, currency, kinds=None, account=None, credit_type=None, plan=None):
    """The lines of a month's figure, by grant: what a drill-down lists."""
    lines = RevenueLine.objects.filter(month=month, currency=currency).select_related("grant")
    if kinds:
        lines = lines.filter(kind__in=kinds)
    for name, value in (("account", account), ("credit_type", credit_type), ("plan", plan)):
        if value is not None:
            lines = lines.filter(**{f"{name}_id": value})
    return lines.order_by("grant_id", "kind")


# What the admin's revenue pages read besides the above (added for them).


def currencies():
    """The currencies that have revenue lines or platform fees, in order."""
    return sorted(
        {currency for model in (RevenueLine, FeeLine)
         for currency in model.objects.order_by().values_list("currency", flat=True).distinct()}
    )  # fmt: skip


def figure_lines(figure):
    """The lines one movement figure is made of, and the column it sums."""
    if figure in MONEY:
        return MONEY[figure], "amount"
    return CREDITS[figure], "credits"


def figure_by_account(*, month, currency, figure, filters=None):
    """One movement figure of a month by account (a drill-down): rows of account_id and
    value, ordered by account, left as a query so that a page of it is read at a time."""
    lines, column = figure_lines(figure)
    return (
        _lines(currency=currency, filters=filters)
        .filter(lines, month=month)
        .values("account_id")
        .annotate(value=Sum(column))
        .order_by("account_id")
    )


def lines_behind(*, month, currency, figure, account, filters=None):
    """The lines (with their grants) behind one account's movement figure in a month."""
    lines, _ = figure_lines(figure)
    found = grants_behind(month=month, currency=currency, account=account)
    return found.filter(lines).filter(**(filters or {}))


def account_statement(*, account, last):
    """{currency: {month: Figures}} of one account, from its first month with revenue in
    that currency to `last`."""
    firsts = {}
    for model in (RevenueLine, FeeLine):
        for row in (model.objects.filter(account_id=account, month__lte=last)
                    .values("currency").annotate(first=Min("month")).order_by()):  # fmt: skip
            firsts[row["currency"]] = min(row["first"], firsts.get(row["currency"], row["first"]))
    return {
        currency: {
            month: figures.get((currency, account), Figures())
            for month, figures in series(
                first=first, last=last, currency=currency, dimension="account", value=account
            ).items()
        }  # fmt: skip
        for currency, first in sorted(firsts.items())
    }
