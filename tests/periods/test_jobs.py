"""The period jobs as jobs: restart-safe, safe beside a second copy, constant queries per
chunk, recorded as JobRuns, runnable by beat (a real worker), by the command and by hand."""

from datetime import timedelta
from io import StringIO

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.periods import jobs, tasks
from apps.periods.jobs import run_job
from apps.periods.models import JobRun
from apps.periods.services import renew_due_subscriptions
from apps.usage.services import release_expired_reservations, reserve
from apps.wallets.models import CreditGrant
from apps.wallets.services import expire_grants
from config.celery import app
from tests.ledger import assert_ledger_sound, give, race

from .conftest import FEB_28, JAN_31, MAR_31, D, grants, ledger_picture, monthly_plan, spend
from .conftest import subscribed as subscribe


def world(prefix, *, accounts=6, used=300, shift=timedelta(0), calendar=None):
    """`accounts` subscribers of one plan (50 % rollover, cap 150), each with a pack that
    expires with the period; the same world under another prefix compares equal."""
    if calendar is not None:
        calendar.move_to(JAN_31 + shift, tick=False)
    plan = monthly_plan(credits=1000, percent=50, cap=150, code=f"{prefix}plan")
    for i in range(accounts):
        account, _ = subscribe(plan, external_id=f"{prefix}{i}")
        give(account, 40 + i, days=20, source=CreditGrant.Source.PURCHASE)
        spend(account, used + i)


class Kill(Exception):
    pass


def killed_after(chunks):
    def on_chunk(counts):
        if counts.chunks == chunks:
            raise Kill

    return on_chunk


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


def test_a_job_run_is_recorded_with_its_counts(calendar):
    world("rec-", accounts=3, calendar=calendar)
    run = run_job(job="renew_due_subscriptions", trigger="command", now=FEB_28)
    assert (run.status, run.counts["renewed"], run.counts["rolled_over"]) == (
        "succeeded",
        3,
        "450",
    )
    assert run.finished_at is not None


def test_a_job_run_that_dies_is_recorded_as_failed_with_how_far_it_got(calendar, monkeypatch):
    world("die-", accounts=4, calendar=calendar)

    def dying(*, now, on_chunk, **options):
        def progress_then_die(counts):
            on_chunk(counts)
            killed_after(1)(counts)

        return renew_due_subscriptions(now=now, chunk_size=2, on_chunk=progress_then_die)

    monkeypatch.setitem(jobs.JOBS, "renew_due_subscriptions", dying)
    with pytest.raises(Kill):
        run_job(job="renew_due_subscriptions", trigger="command", now=FEB_28)
    run = JobRun.objects.get()
    assert run.counts["renewed"] == 2  # the first chunk committed, and the run says so
    assert run.status == "failed" and "Kill" in run.error


def test_run_period_jobs_runs_every_job_once_as_of_the_given_time(calendar):
    world("cmd-", accounts=2, calendar=calendar)
    calendar.move_to(MAR_31, tick=False)
    out = StringIO()
    call_command("run_period_jobs", "--now", "2026-02-28T12:00:00Z", stdout=out)
    text = out.getvalue()
    assert "renew_due_subscriptions: succeeded" in text and "renewed=2" in text
    assert "expire_grants: succeeded" in text
    assert "release_expired_reservations: succeeded" in text
    assert JobRun.objects.filter(trigger="command").count() == len(jobs.JOBS) == 9


def test_run_period_jobs_refuses_a_time_without_a_zone_or_in_the_future(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="zone"):
        call_command("run_period_jobs", "--now", "2026-02-28T12:00:00")
    with pytest.raises(CommandError, match="future"):
        call_command("run_period_jobs", "--now", "2999-01-01T00:00:00Z")


def test_beat_schedules_exist_in_the_database(db):
    from django_celery_beat.models import PeriodicTask

    scheduled = dict(PeriodicTask.objects.values_list("task", "interval__every"))
    assert scheduled == {
        "periods.renew_due_subscriptions": 1,
        "periods.release_expired_reservations": 1,
        "periods.expire_grants": 5,
        "periods.check_balance_alerts": 1,
        "periods.retry_webhook_deliveries": 1,
        "periods.suspend_past_due_accounts": 15,
        "periods.send_overage_charges": 5,
        "periods.run_auto_recharges": 1,
        "periods.publish_outbox": 1,
    }
    assert set(scheduled) <= set(app.tasks)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_each_job_runs_through_a_real_worker(calendar):
    world("beat-", accounts=2, calendar=calendar)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        renewed = tasks.renew_due_subscriptions.delay(now=MAR_31.isoformat()).get(timeout=60)
        expired = tasks.expire_grants.delay(now=MAR_31.isoformat()).get(timeout=60)
        released = tasks.release_expired_reservations.delay().get(timeout=60)
        suspended = tasks.suspend_past_due_accounts.delay().get(timeout=60)
        billed = tasks.send_overage_charges.delay().get(timeout=60)
        recharged = tasks.run_auto_recharges.delay().get(timeout=60)
    assert renewed["renewed"] == 2 and renewed["periods"] == 4
    assert D(expired.get("expired", "0")) >= 0 and released.get("failures", 0) == 0
    assert suspended.get("suspended", 0) == 0
    assert billed.get("invoice_items", 0) == recharged.get("recharges", 0) == 0  # nothing due
    assert JobRun.objects.filter(trigger="beat", status="succeeded").count() == 6
    assert_ledger_sound()
    connection.close()


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
