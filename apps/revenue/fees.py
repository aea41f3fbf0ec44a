"""Platform fees (models.RatableFee): billed when their period starts, recognised evenly over
the period by elapsed time, and what is left recognised at once when the period is cut short.
The posting run posts them into fee lines (models.FeeLine), as it posts the ledger into
revenue lines: a closed month keeps the fees it was closed with, and a fee written or cut
after its month closed moves the first open month instead, marked with the month it belongs
to (docs/revenue.md, "The platform fee over the period").

Recognised through a moment t = the fee's amount × elapsed / length, rounded half up to the
currency's smallest unit. Cumulative, so a fee's months add up to its amount exactly."""

from collections import defaultdict
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal, localcontext

from django.db.models import Q, Sum

from apps.core.allocation import PRECISION
from apps.core.currencies import smallest_unit
from apps.core.decimals import money_sum

from .models import FeeLine, RatableFee
from .months import first_open, month_of, next_month

ZERO = Decimal(0)
Kind = FeeLine.Kind


def _micros(delta):
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def recognised_through(*, amount, start, end, moment, currency, cut_at=None):
    """What of a fee of `amount` for the period [start, end) is recognised by `moment`;
    all of it from `cut_at` on, when the period was cut short there."""
    if moment <= start:
        return ZERO
    if moment >= end or (cut_at is not None and moment >= cut_at):
        return amount
    with localcontext(prec=PRECISION):
        share = amount * _micros(moment - start) / _micros(end - start)
        return share.quantize(smallest_unit(currency), rounding=ROUND_HALF_UP)


def month_start(month):
    """The first moment of the month of the date `month`, UTC."""
    return datetime.combine(date(month.year, month.month, 1), time.min, tzinfo=UTC)


def schedule(fee):
    """{(month, kind): amount}: what the fee's lines hold once posted, by the month each
    amount belongs to: billed in the month its period starts, recognised month by month."""
    terms = {"amount": fee.amount, "start": fee.period_start, "end": fee.period_end,
             "currency": fee.currency, "cut_at": fee.cut_at}  # fmt: skip
    ends = min(fee.period_end, fee.cut_at or fee.period_end)
    month = month_of(fee.period_start)
    wanted = {(month, Kind.BILLED): fee.amount}
    before = ZERO
    while True:
        following = next_month(month)
        through = recognised_through(moment=month_start(following), **terms)
        if through != before:
            wanted[(month, Kind.RECOGNISED)] = through - before
        before = through
        if month_start(following) >= ends:
            return wanted
        month = following


def post_fees(*, closed):
    """Post the fees written or cut since the last run (in the caller's transaction, under
    the posting lock): each fee's lines are brought to its schedule; a difference for a
    month that is closed goes to the first open month. Returns the number of fees posted."""
    # Why the lock: a cut (cut_fees) marks its fee again; it waits for this run and is
    # posted by the next, never lost between this read and the flag cleared below.
    fees = list(
        RatableFee.objects.filter(needs_posting=True).order_by("pk").select_for_update(of=("self",))
    )
    if not fees:
        return 0
    lines = {(line.fee_id, line.month, line.dated_month, line.kind): line
             for line in FeeLine.objects.filter(fee__in=fees)}  # fmt: skip
    posted = defaultdict(Decimal)
    for (fee_id, _, dated, kind), line in lines.items():
        posted[(fee_id, dated, kind)] += line.amount
    new, changed = [], []
    for fee in fees:
        wanted = schedule(fee)
        here = {(dated, kind) for fee_id, dated, kind in posted if fee_id == fee.pk}
        for dated, kind in sorted(set(wanted) | here):
            difference = wanted.get((dated, kind), ZERO) - posted[(fee.pk, dated, kind)]
            if not difference:
                continue
            month = first_open(dated, closed)
            line = lines.get((fee.pk, month, dated, kind))
            if line is not None:
                line.amount += difference
                changed.append(line)
                continue
            new.append(FeeLine(fee=fee, month=month, dated_month=dated, kind=kind,
                               amount=difference, account_id=fee.account_id,
                               plan_id=fee.plan_id, currency=fee.currency))  # fmt: skip
    FeeLine.objects.bulk_create(new, batch_size=5000)
    FeeLine.objects.bulk_update(changed, ["amount"], batch_size=5000)
    FeeLine.objects.filter(fee__in=fees, amount=0).delete()  # undone by a cut: nothing left
    RatableFee.objects.filter(pk__in=[fee.pk for fee in fees]).update(needs_posting=False)
    return len(fees)


def cut_fees(*, subscription_id, at):
    """The subscription's period ended early at `at`: its fee recognises what is left there.
    In the caller's transaction; posted by the next posting run."""
    return RatableFee.objects.filter(
        subscription_id=subscription_id, period_start__lt=at, period_end__gt=at, cut_at=None
    ).update(cut_at=at, needs_posting=True)


def fee_series(*, first, last, currency=None, group=None, value=None):
    """{month: {(currency, group value): (billed, recognised, deferred at the month's end)}}
    for every month from `first` to `last`, from the fee lines, by `group` ("plan_id",
    "account_id" or None: by currency alone, the group value None), optionally for one
    `value` of it: two queries whatever the span. A key with nothing billed, recognised or
    deferred in a month is left out."""
    lines = FeeLine.objects.all()
    if currency:
        lines = lines.filter(currency=currency)
    if group and value is not None:
        lines = lines.filter(**{group: value})
    names = ("currency", *([group] if group else []))
    sums = {"billed": Sum("amount", filter=Q(kind=Kind.BILLED), default=ZERO),
            "recognised": Sum("amount", filter=Q(kind=Kind.RECOGNISED), default=ZERO)}  # fmt: skip

    def key(row):
        return (row["currency"], row[group] if group else None)

    deferred = {
        key(row): money_sum(row["billed"]) - money_sum(row["recognised"])
        for row in lines.filter(month__lt=first).values(*names).annotate(**sums).order_by()
    }
    moved = defaultdict(dict)
    for row in (lines.filter(month__gte=first, month__lte=last)
                .values(*names, "month").annotate(**sums).order_by()):  # fmt: skip
        moved[row["month"]][key(row)] = (money_sum(row["billed"]), money_sum(row["recognised"]))
    result, month = {}, first
    while month <= last:
        figures = {}
        for found in sorted(set(deferred) | set(moved[month]), key=str):
            billed, recognised = moved[month].get(found, (ZERO, ZERO))
            deferred[found] = deferred.get(found, ZERO) + billed - recognised
            if billed or recognised or deferred[found]:
                figures[found] = (billed, recognised, deferred[found])
        result[month] = figures
        month = next_month(month)
    return result
