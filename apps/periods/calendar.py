"""Period boundaries, counted from a subscription's billing anchor: the k-th boundary is
anchor + k intervals, so a period that starts on the 31st ends on the last day of a short
month and the next one is back on the 31st (never drifting to the 28th)."""

from calendar import monthrange


def _months(interval):
    return 12 if interval == "year" else 1


def add_months(moment, months):
    """`moment` + `months` calendar months, the day clamped to the month's last (as
    dateutil's relativedelta does, at a fraction of its cost: renewal calls it per row)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, monthrange(year, month)[1]))


def boundary(*, anchor, interval, index):
    return add_months(anchor, _months(interval) * index)


def index_of(*, anchor, interval, moment):
    """The first boundary index at or after `moment`."""
    months = (moment.year - anchor.year) * 12 + moment.month - anchor.month
    index = max(0, months // _months(interval) - 1)
    while boundary(anchor=anchor, interval=interval, index=index) < moment:
        index += 1
    return index


def period_end_after(*, anchor, interval, moment, periods=1):
    """The end of the period `periods` periods after the one that ends at `moment` (a
    boundary): with periods=1, the end of the next period."""
    index = index_of(anchor=anchor, interval=interval, moment=moment)
    if boundary(anchor=anchor, interval=interval, index=index) > moment:
        index -= 1  # `moment` is inside a period: count from the boundary before it
    return boundary(anchor=anchor, interval=interval, index=index + periods)
