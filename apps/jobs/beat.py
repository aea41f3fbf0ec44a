"""One beat sends the schedule, however many run.

Two beat processes (a deploy that overlaps, a second node started by mistake, a failover
copy) would each send every scheduled job: each job would run twice per interval. The jobs
would still do each row's work once (they claim rows with SKIP LOCKED), but every run is
work and a row in the job-run list. So beat on PostgreSQL holds a session advisory lock on a
connection of its own while it sends: a second beat waits as a standby, trying the lock every
few seconds, and takes over once the first stops or its connection dies. A beat whose lock
connection breaks (a database restart) exits at its next tick, because another beat may hold
the lock by then; run beat under a supervisor that restarts it (Procfile, systemd).

Behind a transaction-mode pooler a session lock would stay on whichever server connection
ran it: beat then needs `BEAT_LOCK_DATABASE_URL`, a direct URL of the same database."""

import logging
import time
import zlib

import environ
import psycopg
from django.conf import settings
from django.db import connections
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)
LOCK_KEY = zlib.crc32(b"creditdesk.beat")  # the advisory lock's key (any fixed number)
STANDBY_RETRY = 3.0  # seconds between a standby's tries of the lock
LOCK_CONNECTION = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30000,  # ms
}


class SingleBeatScheduler(DatabaseScheduler):
    """django-celery-beat's scheduler (schedules are rows of its tables), leading only while
    it holds the beat lock."""

    def __init__(self, *args, lazy=False, **kwargs):
        # Before the schedule is read: a standby reads it when it takes over, as it is then.
        # (Beat's start-up banner makes a lazy instance, which sends nothing.)
        self._lock = None if lazy else wait_for_beat_lock()
        super().__init__(*args, lazy=lazy, **kwargs)

    def tick(self, *args, **kwargs):
        if self._lock is not None and not _alive(self._lock):
            # Not SystemExit: beat takes that for a clean shutdown and exits 0, which a
            # supervisor restarting on failure would leave down.
            raise BeatLockLost("Beat lost its lock connection; exiting so only one beat sends")
        return super().tick(*args, **kwargs)


class BeatLockLost(RuntimeError):
    """Another beat may hold the lock by now: this one must stop (and be restarted)."""


def wait_for_beat_lock():
    """The connection holding the beat lock, once this process has it; None off PostgreSQL
    (SQLite is one machine's embedded default: one beat)."""
    if connections["default"].vendor != "postgresql":
        return None
    standing_by = False
    while True:
        lock = psycopg.connect(**_direct_connection_params(), autocommit=True)
        (held,) = lock.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()
        if held:
            logger.info("Beat holds the beat lock: this process sends the schedule")
            return lock
        lock.close()
        if not standing_by:
            logger.info("Another beat sends the schedule; standing by")
            standing_by = True
        time.sleep(STANDBY_RETRY)


def _alive(lock):
    try:
        lock.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _direct_connection_params():
    """The database's connection parameters, with a short connect timeout and TCP keepalives:
    a lock connection cut off by the network must be noticed (by this beat, and by the server,
    which releases the lock then) in seconds, not at the system's two-hour keepalive."""
    if settings.BEAT_LOCK_DATABASE_URL:
        url = environ.Env.db_url_config(settings.BEAT_LOCK_DATABASE_URL)
        params = {**url.get("OPTIONS", {}), "host": url["HOST"], "port": url["PORT"] or 5432,
                  "user": url["USER"], "password": url["PASSWORD"],
                  "dbname": url["NAME"]}  # fmt: skip
    else:
        params = connections["default"].get_connection_params()
        params.pop("cursor_factory", None)  # Django's own, for its cursors
        params.pop("context", None)
        params.pop("prepare_threshold", None)
    return {**params, **LOCK_CONNECTION}
