"""A Celery worker SIGKILLed in the middle of a renewal chunk: the chunk's transaction dies
with its connection, the run's row is left running (the job-run list calls it stuck), and
the job's next run (beat's next tick, sent again here) on a new worker leaves the same
ledger as an unbroken run: every due subscription renewed once. Real processes: two
`celery worker`s one after the other, Redis, the test's PostgreSQL."""

import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from apps.accounts.models import Subscription
from apps.jobs.models import JobRun
from apps.jobs.tasks import TASKS
from apps.wallets.models import CreditGrant
from tests.ledger import assert_ledger_sound
from tests.periods.conftest import (
    FEB_28,
    calendar,  # noqa: F401 - a fixture this test uses
    world,
)
from tests.workers import empty_queue

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.reliability,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
ACCOUNTS = 30
JOB = "renew_due_subscriptions"


def database_url():
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def worker(log):
    """A worker process on this test's queue, database and Redis."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "DATABASE_URL": database_url()}  # fmt: skip
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
             "--loglevel", "INFO", "-Q", settings.CELERY_TASK_DEFAULT_QUEUE],
            cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def waiting_on_a_row_lock(url):
    with psycopg.connect(url, autocommit=True) as probe:
        return probe.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        ).fetchone()[0]


def wait_for(condition, seconds, log):
    deadline = time.monotonic() + seconds  # real time: the test's clock stands still
    while not condition():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def test_a_worker_killed_mid_renewal_chunk_leaves_the_ledger_of_an_unbroken_run(
    calendar,  # noqa: F811 - the fixture
    tmp_path,
):
    world("kill-", accounts=ACCOUNTS, calendar=calendar)
    due = Subscription.objects.filter(current_period_end__lte=FEB_28).order_by("pk")
    held = due.first()
    url = database_url()
    empty_queue()
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    killed = worker(first)
    try:
        # One subscription's row is held: the run renews the others (SKIP LOCKED), then its
        # second pass waits on that row inside an open chunk. There the worker is killed.
        with psycopg.connect(url) as gate:
            gate.execute("SELECT 1 FROM accounts_subscription WHERE id = %s FOR UPDATE",
                         [held.pk])  # fmt: skip
            TASKS[JOB].apply_async(kwargs={"now": FEB_28.isoformat()})
            wait_for(lambda: waiting_on_a_row_lock(url) > 0, 60, first)
            killed.send_signal(signal.SIGKILL)
            killed.wait(timeout=10)
        (stuck,) = JobRun.objects.filter(job=JOB)
        assert stuck.status == JobRun.Status.RUNNING
        renewed_before_the_kill = ACCOUNTS - due.count()
        assert renewed_before_the_kill == ACCOUNTS - 1  # all but the held one: committed

        # Beat's next tick sends the job again; a new worker runs it.
        restarted = worker(second)
        try:
            TASKS[JOB].apply_async(kwargs={"now": FEB_28.isoformat()})
            wait_for(lambda: JobRun.objects.filter(job=JOB).exclude(
                status=JobRun.Status.RUNNING).exists(), 60, second)  # fmt: skip
        finally:
            restarted.terminate()
            restarted.wait(timeout=30)
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait()
    rerun = JobRun.objects.filter(job=JOB).exclude(pk=stuck.pk).get()
    assert (rerun.status, rerun.counts.get("renewed")) == (JobRun.Status.SUCCEEDED, 1)
    assert not due.exists()
    periods = CreditGrant.objects.filter(account__external_id__startswith="kill-",
                                         source=CreditGrant.Source.PLAN_PERIOD)  # fmt: skip
    assert periods.count() == 2 * ACCOUNTS  # the first period's and the renewal's, once each
    assert_ledger_sound()
    print(
        f"\nWorker killed mid renewal chunk: {renewed_before_the_kill} of {ACCOUNTS} renewed "
        f"before the kill, the held one's chunk rolled back; the next run renewed "
        f"{rerun.counts.get('renewed')}; every subscription renewed once; ledger sound"
    )
