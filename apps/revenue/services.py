"""Closing and reopening a revenue month (docs/revenue.md, "Month close"); cash refunds
recorded for posting."""

from datetime import date

from django.db import transaction

from apps.core import clock
from apps.core.errors import InvalidInput

from .models import CashRefund, FeeLine, RevenueLine, RevenueMonth
from .months import next_month
from .posting import locked_cursor, post_locked
from .selectors import month_figures


def _first_day(month):
    if not isinstance(month, date) or month.day != 1:
        raise InvalidInput("Give a month as its first day.", details={"month": ["YYYY-MM-01"]})
    return month


def close_month(*, month, acting_user):
    """Freeze a month's figures. Only a month that has ended, and only after every earlier
    month with revenue is closed. Posts first, holding the posting lock, so the frozen
    figures include every ledger entry committed before the close; entries dated in the
    month that commit later go to the first open month, marked as dated in this one."""
    month = _first_day(month)
    now = clock.now()
    if next_month(month) > now.date():
        raise InvalidInput(f"{month:%B %Y} has not ended yet.", details={"month": ["not ended"]})
    with transaction.atomic(durable=True):
        # Why the lock: posting must not add lines to the month while it is being frozen.
        post_locked(locked_cursor())
        # Every month from the first with revenue up to this one closes first, lines or not:
        # an open month before a closed one would take late entries in front of it.
        closed = set(RevenueMonth.objects.filter(closed=True).values_list("month", flat=True))
        firsts = [model.objects.order_by("month").values_list("month", flat=True).first()
                  for model in (RevenueLine, FeeLine)]  # fmt: skip
        earlier = min((found for found in firsts if found is not None), default=None)
        while earlier is not None and earlier < month:
            if earlier not in closed:
                raise InvalidInput(
                    f"Close {earlier:%B %Y} first: months close in order.",
                    details={"month": [f"{earlier:%Y-%m} is open"]},
                )
            earlier = next_month(earlier)
        record, _ = RevenueMonth.objects.select_for_update().get_or_create(month=month)
        if record.closed:
            raise InvalidInput(f"{month:%B %Y} is already closed.", details={"month": ["closed"]})
        record.closed = True
        record.closed_at, record.closed_by = now, acting_user
        record.figures = {
            currency: figures.as_json()
            for (currency,), figures in month_figures(month=month).items()
        }
        record._history_user = acting_user
        record.save()
        return record


def reopen_month(*, month, acting_user, reason):
    """Open a closed month again (its own permission): only the latest closed month, so
    that closed months stay a run from the first. Recorded in the month's history."""
    month = _first_day(month)
    if not (reason or "").strip():
        raise InvalidInput("Say why the month is reopened.", details={"reason": ["required"]})
    with transaction.atomic(durable=True):
        locked_cursor()  # posting waits: it reads which months are closed
        record = RevenueMonth.objects.select_for_update().filter(month=month, closed=True).first()
        if record is None:
            raise InvalidInput(f"{month:%B %Y} is not closed.", details={"month": ["open"]})
        if RevenueMonth.objects.filter(month__gt=month, closed=True).exists():
            raise InvalidInput(
                "Reopen the later closed months first.", details={"month": ["a later is closed"]}
            )
        record.closed = False
        record.reopened_at, record.reopened_by = clock.now(), acting_user
        record.figures = {}
        record._history_user = acting_user
        record._change_reason = reason.strip()
        record.save()
        return record


def record_cash_refund(*, grant, amount, reason):
    """Money paid back on `grant`'s purchase (negative: returned to us), in the caller's
    transaction; the next posting run reports what its claw-backs did not release of
    deferred revenue as refunded out of recognised revenue (docs/revenue.md, "Refunds")."""
    return CashRefund.objects.create(
        grant=grant, amount=amount, currency=grant.currency, reason=reason[:255]
    )
