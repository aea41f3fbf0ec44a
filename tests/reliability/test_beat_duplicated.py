"""Two beat processes at once: only the one holding the beat lock sends the schedule, so a
job scheduled every second is sent once a second, not twice; when that beat is killed the
other takes over. Real processes: two `celery beat`, Redis, the test's PostgreSQL."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.jobs.beat import LOCK_KEY, STANDBY_RETRY
from tests.clusters import database_url
from tests.reliability.load import wait_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.reliability,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
EVERY_SECOND = "reliability: every second"


def sent(redis_broker):
    """How many messages beat sent for the every-second schedule (waiting in the queue)."""
    raw = redis_broker.client().lrange(settings.CELERY_TASK_DEFAULT_QUEUE, 0, -1)
    return sum(json.loads(m)["headers"].get("periodic_task_name") == EVERY_SECOND for m in raw)


def beat(env, log):
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
             "--schedule", str(log.with_suffix(".db"))],
            cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def test_two_beats_send_each_schedule_once_and_the_standby_takes_over(redis_broker, tmp_path):
    PeriodicTask.objects.update(enabled=False)  # the real schedules would fill the queue
    every, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    PeriodicTask.objects.create(name=EVERY_SECOND, task="periods.publish_outbox", interval=every)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "DATABASE_URL": database_url(), "REDIS_URL": redis_broker.url}  # fmt: skip
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    beats = [beat(env, logs[0]), beat(env, logs[1])]
    try:

        def said():
            return "\n".join(f"{log.name}:\n{log.read_text()}" for log in logs)

        def leader():
            holders = [b for b, log in zip(beats, logs, strict=True)
                       if "this process sends the schedule" in log.read_text()]  # fmt: skip
            return holders[0] if len(holders) == 1 else None

        wait_for(lambda: sent(redis_broker) > 0, 30, said)
        wait_for(lambda: all("standing by" in log.read_text() or "sends the schedule"
                             in log.read_text() for log in logs), 30, said)  # fmt: skip
        assert leader() is not None, said()
        first = sent(redis_broker)
        time.sleep(6)
        in_six_seconds = sent(redis_broker) - first
        # One beat: about six (a tick may slip a little); two would send about twelve.
        assert 4 <= in_six_seconds <= 8, (in_six_seconds, said())

        leader().send_signal(signal.SIGKILL)  # its lock connection dies with it
        killed_at, before = time.monotonic(), sent(redis_broker)
        wait_for(lambda: sent(redis_broker) > before, 3 * STANDBY_RETRY + 10, said)
        took_over = time.monotonic() - killed_at
        time.sleep(4)
        assert 3 <= sent(redis_broker) - before <= 4 + took_over + 2, said()
    finally:
        for process in beats:
            process.kill()
            process.wait(timeout=10)
    print(
        f"\nTwo beats: {in_six_seconds} sends in 6 s of an every-second schedule; the "
        f"standby took over {took_over:.1f} s after the leader was killed"
    )


def test_a_beat_whose_lock_connection_dies_exits_with_an_error(redis_broker, tmp_path):
    """A supervisor that restarts beat on failure must see one: exit status 1, not 0."""
    PeriodicTask.objects.update(enabled=False)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "DATABASE_URL": database_url(), "REDIS_URL": redis_broker.url}  # fmt: skip
    log = tmp_path / "beat.log"
    process = beat(env, log)
    try:
        wait_for(lambda: "sends the schedule" in log.read_text(), 30, log.read_text)
        with connection.cursor() as cursor:
            cursor.execute(
                # This database's beat lock only: another test process's beat holds the
                # same key in its own database.
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND objid = %s AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                [LOCK_KEY],
            )
            assert cursor.fetchall() == [(True,)]
        assert process.wait(timeout=30) == 1, log.read_text()
    finally:
        process.kill()
        process.wait()
    assert "BeatLockLost" in log.read_text()
