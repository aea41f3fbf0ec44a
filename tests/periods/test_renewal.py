"""Renewal: period grants, rollover arithmetic, rollover expiry, catch-up (docs/periods.md)."""

from datetime import datetime, timedelta

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from apps.accounts.models import Subscription
from apps.core.errors import QuotaExceeded
from apps.periods.calendar import add_months, boundary
from apps.periods.services import renew_due_subscriptions
from apps.wallets.models import CreditGrant
from apps.wallets.services import expire_grants
from tests.ledger import assert_ledger_sound, wallet_of

from .conftest import (
    APR_30,
    FEB_28,
    JAN_31,
    MAR_31,
    MAY_31,
    D,
    entries,
    grants,
    ledger_picture,
    monthly_plan,
    spend,
    subscribed,
)

PLAN_PERIOD = CreditGrant.Source.PLAN_PERIOD
ROLLOVER = CreditGrant.Source.ROLLOVER


def test_month_end_periods_do_not_drift():
    assert [boundary(anchor=JAN_31, interval="month", index=k) for k in range(4)] == [
        JAN_31,
        FEB_28,
        MAR_31,
        APR_30,
    ]


def test_putting_an_account_on_a_plan_grants_its_first_period(calendar):
    account, subscription = subscribed(monthly_plan(credits=1000, price="30"))
    [grant] = grants(account)
    assert (grant.source, grant.amount, grant.expires_at) == (PLAN_PERIOD, D(1000), FEB_28)
    assert grant.reference == f"period:{subscription.pk}:2026-01-31T12:00:00Z:credits"
    assert grant.unit_price == D("0.03")  # 30 for 1,000 credits: the cost basis
    assert (subscription.current_period_start, subscription.current_period_end) == (
        JAN_31,
        FEB_28,
    )
    assert_ledger_sound()


@pytest.mark.parametrize(
    ("percent", "cap", "used", "rolled"),
    [
        (50, None, 600, 200),  # half of the 400 left
        (50, 150, 600, 150),  # the cap binds
        (0, None, 600, 0),  # no rollover: all 400 expire
        (100, None, 600, 400),  # everything left rolls
        (100, None, 1000, 0),  # nothing left, nothing rolls
        (33.33, None, 0, "333.3"),  # 1000 × 33.33 % = 333.3
        (50, 0, 600, 0),  # a cap of zero
    ],
)
def test_renewal_rolls_over_min_of_percent_and_cap_and_expires_the_rest(
    calendar, percent, cap, used, rolled
):
    account, _ = subscribed(monthly_plan(credits=1000, percent=percent, cap=cap))
    if used:
        spend(account, used)
    counts = renew_due_subscriptions(now=FEB_28)
    rolled, left = D(str(rolled)), D(1000 - used)
    assert (counts.renewed, counts.rolled_over, counts.expired) == (1, rolled, left - rolled)
    [ended, new] = grants(account, PLAN_PERIOD)
    assert ended.remaining == 0 and new.expires_at == MAR_31
    rollovers = grants(account, ROLLOVER)
    assert [g.amount for g in rollovers] == ([rolled] if rolled else [])
    assert [-e.amount for e in entries(account, "expire")] == (
        [left - rolled] if left > rolled else []
    )
    assert wallet_of(account).balance == D(1000) + rolled
    assert_ledger_sound()


def test_rollover_rounds_down_to_six_places(calendar):
    account, _ = subscribed(monthly_plan(credits="0.000003", percent=50))
    renew_due_subscriptions(now=FEB_28)
    [rollover] = grants(account, ROLLOVER)
    assert rollover.amount == D("0.000001")  # 0.0000015 rounds down, never up
    assert_ledger_sound()


def test_rolled_over_credits_expire_after_n_periods(calendar):
    account, _ = subscribed(monthly_plan(credits=1000, percent=100, after=2))
    spend(account, 900)
    renew_due_subscriptions(now=FEB_28)
    [rollover] = grants(account, ROLLOVER)
    assert (rollover.amount, rollover.expires_at) == (D(100), APR_30)  # two periods later
    calendar.move_to(MAR_31, tick=False)
    renew_due_subscriptions(now=MAR_31)
    rollover.refresh_from_db()
    assert rollover.remaining == D(100)  # still inside its two periods; rollovers never roll
    renew_due_subscriptions(now=APR_30)
    rollover.refresh_from_db()
    assert rollover.remaining == 0
    assert_ledger_sound()


def test_rollover_is_spent_before_the_new_period_because_it_expires_sooner(calendar):
    account, _ = subscribed(monthly_plan(credits=1000, percent=50, after=1))
    spend(account, 600)
    calendar.move_to(FEB_28 + timedelta(hours=1), tick=False)
    renew_due_subscriptions()
    # The rollover and the new period both expire on Mar 31: the older one (the rollover,
    # made as the old period closed) burns first.
    spend(account, 250)
    [rollover] = grants(account, ROLLOVER)
    new = grants(account, PLAN_PERIOD)[-1]
    rollover.refresh_from_db()
    new.refresh_from_db()
    assert (rollover.remaining, new.remaining) == (D(0), D(950))
    assert_ledger_sound()


def test_a_subscription_that_missed_three_periods_catches_them_up_in_order(calendar):
    account, subscription = subscribed(monthly_plan(credits=1000, percent=50, cap=300, after=1))
    spend(account, 600)  # 400 left in the first period
    calendar.move_to(MAY_31 + timedelta(days=1), tick=False)
    counts = renew_due_subscriptions()
    subscription.refresh_from_db()
    assert (subscription.current_period_start, subscription.current_period_end) == (
        MAY_31,
        boundary(anchor=JAN_31, interval="month", index=5),
    )
    assert counts.periods == 4  # Feb-Mar, Mar-Apr, Apr-May, May-Jun
    plan_grants = grants(account, PLAN_PERIOD)
    assert [g.expires_at for g in plan_grants] == [
        FEB_28,
        MAR_31,
        APR_30,
        MAY_31,
        subscription.current_period_end,
    ]
    # Each closed period rolls min(left × 50 %, 300): 200 from the first, then 300 from
    # each untouched one; each rollover lives one period, so only the last is still spendable.
    assert [g.amount for g in grants(account, ROLLOVER)] == [D(200), D(300), D(300), D(300)]
    assert wallet_of(account).balance == D(1000) + D(300)
    assert counts.rolled_over == D(1100)
    assert_ledger_sound()


def test_renewal_resets_quotas_because_counters_are_per_period(calendar):
    account, _ = subscribed(monthly_plan(credits=1000, limit_per_period=D(5)))
    spend(account, 5)
    with pytest.raises(QuotaExceeded):
        spend(account, 1)
    calendar.move_to(FEB_28, tick=False)
    renew_due_subscriptions()
    spend(account, 5)  # a new period, a new counter
    assert_ledger_sound()


def test_running_renewal_twice_changes_nothing_the_second_time(calendar):
    for _ in range(3):
        account, _ = subscribed(monthly_plan(credits=100, percent=50))
        spend(account, 30)
    calendar.move_to(MAR_31, tick=False)
    first = renew_due_subscriptions()
    picture = ledger_picture()
    second = renew_due_subscriptions()
    assert (first.renewed, second.renewed) == (3, 0)
    assert ledger_picture() == picture
    assert_ledger_sound()


def test_canceled_and_past_due_subscriptions_are_not_renewed(calendar):
    account, subscription = subscribed(monthly_plan(credits=100))
    Subscription.objects.filter(pk=subscription.pk).update(status="past_due")
    assert renew_due_subscriptions(now=MAR_31).renewed == 0
    assert len(grants(account)) == 1


def test_expire_grants_rolls_over_a_plan_grant_it_reaches_first(calendar):
    account, _ = subscribed(monthly_plan(credits=1000, percent=50))
    spend(account, 600)
    counts = expire_grants(now=FEB_28)
    assert (counts.rolled_over, counts.expired) == (D(200), D(200))
    renew_due_subscriptions(now=FEB_28)  # then renewal grants the new period only
    assert [g.amount for g in grants(account, ROLLOVER)] == [D(200)]
    assert wallet_of(account).balance == D(1200)
    assert_ledger_sound()


def test_stripe_backed_subscriptions_are_caught_up_only_after_a_grace(calendar, settings):
    settings.STRIPE_RENEWAL_GRACE_MINUTES = 60
    account, subscription = subscribed(monthly_plan(credits=100))
    Subscription.objects.filter(pk=subscription.pk).update(stripe_subscription_id="sub_123")
    assert renew_due_subscriptions(now=FEB_28 + timedelta(minutes=59)).renewed == 0
    assert renew_due_subscriptions(now=FEB_28 + timedelta(minutes=60)).renewed == 1
    assert len(grants(account, PLAN_PERIOD)) == 2


@examples(max_examples=300, deadline=None)
@given(
    anchor=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)),
    months=st.integers(0, 240),
)
def test_month_arithmetic_agrees_with_dateutil(anchor, months):
    assert add_months(anchor, months) == anchor + relativedelta(months=months)
