"""Platform fees (models.RatableFee) in a month: billed, recognised ratably, deferred.

A fee is billed when its period starts and recognised evenly over the period, by elapsed
time: recognised through a moment t = the fee's amount × elapsed / length, rounded half up
to the currency's smallest unit. Cumulative, so a fee's months add up to its amount exactly
(docs/revenue.md, "Plan periods: allocating the price")."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

from django.db.models import Q, Sum

from apps.core.allocation import PRECISION
from apps.core.currencies import smallest_unit

from .models import RatableFee

ZERO = Decimal(0)


@dataclass
class FeeFigures:
    currency: str
    plan_id: int
    billed: Decimal = ZERO  # fees whose period starts in the month
    recognised: Decimal = ZERO  # the parts of every fee's amount falling in the month
    deferred: Decimal = ZERO  # billed by the month's end, not yet recognised at it


def _micros(delta):
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def recognised_through(*, amount, start, end, moment, currency):
    """What of a fee of `amount` for the period [start, end) is recognised by `moment`."""
    if moment <= start:
        return ZERO
    if moment >= end:
        return amount
    with localcontext(prec=PRECISION):
        share = amount * _micros(moment - start) / _micros(end - start)
        return share.quantize(smallest_unit(currency), rounding=ROUND_HALF_UP)


def _moment(value):
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time.min, tzinfo=UTC)


def fee_figures(*, month_start, month_end, currency=None, plan=None):
    """{(currency, plan id): FeeFigures} for the month [month_start, month_end) (dates are
    midnight UTC), optionally for one currency or plan. Fees whose period lies inside the
    month are summed in the database; only those crossing one of its ends are prorated,
    one by one, exactly."""
    month_start, month_end = _moment(month_start), _moment(month_end)
    fees = RatableFee.objects.all()
    if currency is not None:
        fees = fees.filter(currency=currency)
    if plan is not None:
        fees = fees.filter(plan=plan)
    inside = Q(period_start__gte=month_start, period_end__lte=month_end)
    figures = {}

    def row(currency, plan_id):
        key = (currency, plan_id)
        if key not in figures:
            figures[key] = FeeFigures(currency=currency, plan_id=plan_id)
        return figures[key]

    started = Q(period_start__gte=month_start, period_start__lt=month_end)
    sums = (
        fees.filter(started | inside)
        .values("currency", "plan_id")
        .annotate(
            billed=Sum("amount", filter=started, default=ZERO),
            whole=Sum("amount", filter=inside, default=ZERO),
        )
        .order_by()
    )
    for found in sums:
        figures_row = row(found["currency"], found["plan_id"])
        figures_row.billed += found["billed"]
        figures_row.recognised += found["whole"]
    crossing = fees.filter(period_start__lt=month_end, period_end__gt=month_start).exclude(inside)
    for fee in crossing.only("currency", "plan_id", "amount", "period_start", "period_end"):
        figures_row = row(fee.currency, fee.plan_id)
        terms = {"amount": fee.amount, "start": fee.period_start, "end": fee.period_end,
                 "currency": fee.currency}  # fmt: skip
        at_end = recognised_through(moment=month_end, **terms)
        figures_row.recognised += at_end - recognised_through(moment=month_start, **terms)
        figures_row.deferred += fee.amount - at_end
    return dict(sorted(figures.items()))


def month_bounds(month):
    """[first moment, first moment of the next month) of the month of the date `month`, UTC."""
    first = date(month.year, month.month, 1)
    following = (first + timedelta(days=32)).replace(day=1)
    return _moment(first), _moment(following)
