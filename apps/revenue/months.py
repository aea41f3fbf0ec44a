"""Months as revenue counts them: the first day of a calendar month, UTC."""

from datetime import date


def month_of(moment):
    return date(moment.year, moment.month, 1)


def next_month(month):
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months_back(month, count):
    """The `count` months ending with `month`, oldest first."""
    found = [month]
    for _ in range(count - 1):
        first = found[0]
        found.insert(0, date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1))
    return found


def first_open(month, closed):
    """`month`, or the first month after it that is not in `closed`: where a movement
    dated in `month` is reported."""
    while month in closed:
        month = next_month(month)
    return month
