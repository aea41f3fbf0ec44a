"""The registered jobs: in one order, recorded as JobRuns, runnable by beat (a real worker,
each job at least once), by the command and by hand."""

from dataclasses import replace
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from apps.core.models import OutboxTask
from apps.jobs.models import JobRun
from apps.jobs.registry import JOBS, register, run_job, task_name
from apps.jobs.tasks import TASKS
from apps.periods.services import renew_due_subscriptions
from apps.revenue.verify import verify_revenue
from config.celery import app
from tests.ledger import assert_ledger_sound
from tests.periods.conftest import FEB_28, MAR_31, Kill, killed_after, world
from tests.workers import real_worker

IN_ORDER = [
    "renew_due_subscriptions",
    "notify_trials_ending",
    "expire_grants",
    "release_expired_reservations",
    "check_balance_alerts",
    "retry_webhook_deliveries",
    "suspend_past_due_accounts",
    "send_overage_charges",
    "bill_contracts_at_stripe",
    "run_auto_recharges",
    "post_revenue",
    "fail_stale_simulations",
    "verify_ledger",
    "verify_revenue",
    "publish_outbox",
]


def test_every_app_registered_its_jobs_in_one_order_renewal_first_the_sweeper_last():
    assert list(JOBS) == IN_ORDER
    orders = [job.order for job in JOBS.values()]
    assert orders == sorted(orders)
    assert {name: task.name for name, task in TASKS.items()} == {
        name: f"periods.{name}" for name in IN_ORDER
    }
    assert {task_name(name) for name in JOBS} <= set(app.tasks)


def test_a_job_takes_neither_a_registered_name_nor_a_registered_order():
    expire = JOBS["expire_grants"]
    with pytest.raises(ValueError, match="already registered"):
        register("expire_grants", renew_due_subscriptions, order=999)
    with pytest.raises(ValueError, match="order 10 is taken"):
        register("renew_again", renew_due_subscriptions, order=10)
    assert register("expire_grants", expire.function, order=expire.order) == expire  # a no-op
    assert list(JOBS) == IN_ORDER


def test_run_period_jobs_runs_the_jobs_in_their_registered_order(calendar):
    call_command("run_period_jobs", stdout=StringIO())
    assert list(JobRun.objects.order_by("pk").values_list("job", flat=True)) == IN_ORDER


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

    renewal = replace(JOBS["renew_due_subscriptions"], function=dying)
    monkeypatch.setitem(JOBS, "renew_due_subscriptions", renewal)
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
    assert JobRun.objects.filter(trigger="command").count() == len(JOBS) == len(IN_ORDER)


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
        "periods.notify_trials_ending": 60,
        "periods.release_expired_reservations": 1,
        "periods.expire_grants": 5,
        "periods.check_balance_alerts": 1,
        "periods.retry_webhook_deliveries": 1,
        "periods.suspend_past_due_accounts": 15,
        "periods.send_overage_charges": 5,
        "periods.bill_contracts_at_stripe": 60,
        "periods.run_auto_recharges": 1,
        "periods.post_revenue": 1,
        "periods.fail_stale_simulations": 5,
        "periods.verify_ledger": 24 * 60,
        "periods.verify_revenue": 24 * 60,
        "periods.publish_outbox": 1,
    }
    assert set(scheduled) <= set(app.tasks)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_each_job_runs_through_a_real_worker(calendar):
    world("beat-", accounts=2, calendar=calendar)
    with real_worker():
        renewed = TASKS["renew_due_subscriptions"].delay(now=MAR_31.isoformat()).get(timeout=60)
        expired = TASKS["expire_grants"].delay(now=MAR_31.isoformat()).get(timeout=60)
        released = TASKS["release_expired_reservations"].delay().get(timeout=60)
        suspended = TASKS["suspend_past_due_accounts"].delay().get(timeout=60)
        billed = TASKS["send_overage_charges"].delay().get(timeout=60)
        recharged = TASKS["run_auto_recharges"].delay().get(timeout=60)
        posted = TASKS["post_revenue"].delay().get(timeout=60)
        ledger = TASKS["verify_ledger"].delay().get(timeout=60)
        revenue = TASKS["verify_revenue"].delay().get(timeout=60)
    assert posted["posted"] > 0 and verify_revenue() == []
    assert "problems" not in ledger and "problems" not in revenue  # both clean
    assert renewed["renewed"] == 2 and renewed["periods"] == 4
    assert expired.get("failures", 0) == released.get("failures", 0) == 0
    assert suspended.get("suspended", 0) == 0
    assert billed.get("invoice_items", 0) == recharged.get("recharges", 0) == 0  # nothing due
    assert JobRun.objects.filter(trigger="beat", status="succeeded").count() == 9
    assert_ledger_sound()
    connection.close()


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_other_jobs_run_through_a_real_worker():
    OutboxTask.objects.create(key="ping", task="creditdesk.ping", args=[], kwargs={})
    with real_worker():
        alerts = TASKS["check_balance_alerts"].delay().get(timeout=60)
        retried = TASKS["retry_webhook_deliveries"].delay().get(timeout=60)
        published = TASKS["publish_outbox"].delay().get(timeout=60)
        noticed = TASKS["notify_trials_ending"].delay().get(timeout=60)
        priced = TASKS["bill_contracts_at_stripe"].delay().get(timeout=60)
        stale = TASKS["fail_stale_simulations"].delay().get(timeout=60)
    assert alerts.get("alerts", 0) == retried.get("deliveries", 0) == 0  # nothing due
    assert noticed.get("trial_notices", 0) == priced.get("stripe_prices", 0) == 0
    assert stale.get("stale_simulations", 0) == 0
    assert published["published"] == 1 and not OutboxTask.objects.exists()
    runs = JobRun.objects.filter(trigger="beat", status="succeeded").exclude(task_id="")
    assert sorted(runs.values_list("job", flat=True)) == sorted(
        [
            "check_balance_alerts",
            "retry_webhook_deliveries",
            "publish_outbox",
            "notify_trials_ending",
            "bill_contracts_at_stripe",
            "fail_stale_simulations",
        ]
    )
    connection.close()
