"""The period jobs as jobs: restart-safe, safe beside a second copy, constant queries per
chunk, one bad row costing only itself (tests/jobs/ runs them as registered jobs)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.periods.services import renew_due_subscriptions
from apps.usage.services import release_expired_reservations, reserve
from apps.wallets.models import CreditGrant
from apps.wallets.services import expire_grants
from tests.ledger import assert_ledger_sound, give, race

from .conftest import (
    FEB_28,
    JAN_31,
    Kill,
    grants,
    killed_after,
    ledger_picture,
    monthly_plan,
    spend,
    world,
)
from .conftest import subscribed as subscribe


def test_a_run_killed_after_some_chunks_then_run_again_ends_as_an_uninterrupted_run(calendar):
    world("once-", calendar=calendar)
    world("killed-", calendar=calendar, shift=timedelta(days=1))
    renew_due_subscriptions(now=FEB_28, chunk_size=2)
    expire_grants(now=FEB_28, chunk_size=2)
    later = FEB_28 + timedelta(days=1)
    with pytest.raises(Kill):
        renew_due_subscriptions(now=later, chunk_size=2, on_chunk=killed_after(2))
    with pytest.raises(Kill):
        expire_grants(now=later, chunk_size=2, on_chunk=killed_after(1))
    renew_due_subscriptions(now=later, chunk_size=2)
    expire_grants(now=later, chunk_size=2)
    assert ledger_picture("killed-") == ledger_picture("once-")
    assert_ledger_sound()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_copies_at_once_give_the_same_ledger_as_one(calendar):
    world("once-", accounts=12, calendar=calendar)
    world("twice-", accounts=12, calendar=calendar, shift=timedelta(days=1))
    renew_due_subscriptions(now=FEB_28, chunk_size=3)
    expire_grants(now=FEB_28, chunk_size=3)
    later = FEB_28 + timedelta(days=1)
    runs = race(
        [
            lambda: renew_due_subscriptions(now=later, chunk_size=3),
            lambda: renew_due_subscriptions(now=later, chunk_size=3),
            lambda: expire_grants(now=later, chunk_size=3),
            lambda: expire_grants(now=later, chunk_size=3),
        ],
        workers=4,
    )
    assert not [r for r in runs if isinstance(r, Exception)], runs
    assert runs[0].renewed + runs[1].renewed == 12
    assert ledger_picture("twice-") == ledger_picture("once-")
    assert_ledger_sound()
    connection.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_renewal_runs_beside_consumption_without_losing_a_credit(calendar):
    world("busy-", accounts=8, calendar=calendar)
    calendar.move_to(FEB_28 + timedelta(minutes=1), tick=False)
    from apps.accounts.models import Account

    accounts = list(Account.objects.filter(external_id__startswith="busy-"))
    calls = [lambda a=a: spend(a, 10) for a in accounts for _ in range(5)]
    calls += [lambda: renew_due_subscriptions(chunk_size=2)] * 2
    results = race(calls, workers=8)
    assert not [r for r in results if isinstance(r, Exception)], results
    for account in accounts:
        assert len(grants(account, CreditGrant.Source.PLAN_PERIOD)) == 2
    assert_ledger_sound()
    connection.close()


@pytest.mark.postgres  # SQLite's bulk methods split statements by its variable limit
def test_renewal_issues_the_same_queries_for_a_chunk_of_10_and_of_1000(calendar):
    def subscribers(prefix, n):
        plan = monthly_plan(credits=1000, percent=50, cap=150, code=f"{prefix}plan")
        for i in range(n):
            subscribe(plan, external_id=f"{prefix}{i}")

    subscribers("small-", 10)
    with CaptureQueriesContext(connection) as small:
        assert renew_due_subscriptions(now=FEB_28, chunk_size=10).chunks == 1
    calendar.move_to(JAN_31 + timedelta(days=1), tick=False)
    subscribers("large-", 1000)
    with CaptureQueriesContext(connection) as large:
        counts = renew_due_subscriptions(now=FEB_28 + timedelta(days=1), chunk_size=1000)
    assert (counts.chunks, counts.renewed, counts.rolled_over) == (1, 1000, 150 * 1000)
    # One chunk each, then the empty claim that ends the run.
    assert len(small.captured_queries) == len(large.captured_queries)
    assert_ledger_sound()


def test_release_expired_reservations_issues_the_same_queries_whatever_the_chunk(calendar):
    def holds(prefix, n):
        for i in range(n):
            account, _ = subscribe(monthly_plan(code=f"{prefix}{i}p"), external_id=f"{prefix}{i}")
            reserve(account=account, feature="api_call", quantity=2, ttl_seconds=60)

    holds("a-", 10)
    calendar.move_to(JAN_31 + timedelta(hours=1), tick=False)
    with CaptureQueriesContext(connection) as small:
        assert release_expired_reservations(chunk_size=10).reservations_released == 10
    holds("b-", 40)
    calendar.move_to(JAN_31 + timedelta(hours=2), tick=False)
    with CaptureQueriesContext(connection) as large:
        assert release_expired_reservations(chunk_size=1000).reservations_released == 40
    assert len(small.captured_queries) == len(large.captured_queries)
    assert_ledger_sound()


@pytest.mark.postgres  # SQLite does not enforce a numeric column's precision
def test_one_subscription_that_cannot_renew_costs_only_itself(calendar):
    world("ok-", accounts=4, calendar=calendar)
    huge = monthly_plan(credits="400000000000000000", percent=100, code="huge")
    account, _ = subscribe(huge, external_id="full")
    give(account, "300000000000000000", source=CreditGrant.Source.PURCHASE)
    # Rolled over, a second period would take the wallet past what its column holds.
    counts = renew_due_subscriptions(now=FEB_28, chunk_size=10)
    assert (counts.renewed, counts.failures) == (4, 1)
    assert "subscription" in counts.errors[0]
    assert len(grants(account, CreditGrant.Source.PLAN_PERIOD)) == 1
    assert_ledger_sound()


def test_a_plan_that_cannot_be_priced_costs_only_its_own_subscriptions(calendar):
    world("fine-", accounts=3, calendar=calendar)
    odd = monthly_plan(credits=0, code="odd")  # a price and no credits: no cost basis
    account, _ = subscribe(odd, external_id="odd")
    counts = renew_due_subscriptions(now=FEB_28, chunk_size=10)
    assert (counts.renewed, counts.failures) == (4, 0)
    assert grants(account) == []  # nothing to grant, and nothing broken


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_workers_on_several_connections_give_the_ledger_one_gives_and_add_up_their_counts(
    calendar,
):
    world("one-", accounts=9, calendar=calendar)
    world("three-", accounts=9, calendar=calendar, shift=timedelta(days=1))
    single = renew_due_subscriptions(now=FEB_28, chunk_size=2, workers=1)
    progress = []
    several = renew_due_subscriptions(
        now=FEB_28 + timedelta(days=1),
        chunk_size=2,
        workers=3,
        on_chunk=lambda counts: progress.append(counts.renewed),
    )
    assert (single.renewed, several.renewed) == (9, 9)
    assert (several.rolled_over, several.expired) == (single.rolled_over, single.expired)
    assert progress[-1] == 9 and progress == sorted(progress)
    assert ledger_picture("three-") == ledger_picture("one-")
    assert_ledger_sound()
    connection.close()
