"""Read replicas: reads that decide no money may be served by a streaming replica of the
primary (DATABASE_REPLICA_URLS), so that history, reports, exports, the billing page and admin
lists do not compete with consumes for the primary's cores.

Nothing goes to a replica unless its caller says so (`replica_reads()`, or a view decorated
with `reads_from_replica`): a replica lags, and a read that decides money (check, consume, a
balance before a charge, anything before a write) must see the last commit. Inside a
transaction on the primary every read stays there too. A replica whose replay lags more than
DATABASE_REPLICA_MAX_LAG seconds is skipped until it catches up, one that cannot be reached
for UNREACHABLE_RETRY seconds; with none left, the primary serves."""

import logging
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

logger = logging.getLogger(__name__)
_reading = ContextVar("creditdesk_replica_reads", default=False)

# Seconds the replica has not replayed what it has received; 0 when it has replayed all it
# received (an idle primary sends nothing, and the last replayed commit grows old without any
# lag). A server that is not in recovery is a primary: no lag.
LAG_SQL = """
SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0
            -- Cut off from the primary, a replica has replayed all it received and is stale.
            WHEN NOT EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')
            THEN 'Infinity'
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 'Infinity')
       END
"""


@contextmanager
def replica_reads():
    """Reads inside may come from a replica within the allowed lag."""
    token = _reading.set(True)
    try:
        yield
    finally:
        _reading.reset(token)


def reads_from_replica(view):
    """A view function (or method) whose reads may come from a replica."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        with replica_reads():
            return view(*args, **kwargs)

    return wrapped


def streamed_from_replica(chunks):
    """A streamed response's chunks, read from a replica as the server sends them (after the
    view has returned, outside any `replica_reads()` of its own)."""
    with replica_reads():
        yield from chunks


# Per process, shared by its threads: alias -> (next check due at, usable). One thread checks
# a replica when its check is due (on its own connection: the lag is the server's); the others
# go on with the last answer meanwhile.
_health = {}
_claims = threading.Lock()
# An unreachable replica is tried again after this many seconds, not every check interval: a
# host that does not answer costs the connect timeout on every try.
UNREACHABLE_RETRY = 30.0


def usable_replica():
    """The first replica within the allowed lag, or None (read from the primary)."""
    for alias in settings.DATABASE_REPLICAS:
        due, usable = _health.get(alias, (0.0, False))
        if time.monotonic() >= due and _claim(alias, due, usable):
            usable, wait = _within_lag(alias)
            _health[alias] = (time.monotonic() + wait, usable)
        if usable:
            return alias
    return None


def _claim(alias, due, usable):
    """True for the one thread that checks the replica now."""
    with _claims:
        if _health.get(alias, (0.0, False))[0] != due:
            return False  # another thread took this check
        _health[alias] = (time.monotonic() + settings.DATABASE_REPLICA_CHECK_INTERVAL, usable)
        return True


def _within_lag(alias):
    """`(usable, seconds until the next check)`."""
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(LAG_SQL)
            (lag,) = cursor.fetchone()
    except DatabaseError:
        logger.warning("Replica %s is unreachable; reading from the primary for %d s", alias,
                       UNREACHABLE_RETRY, exc_info=True)  # fmt: skip
        connections[alias].close()
        return False, UNREACHABLE_RETRY
    if lag > settings.DATABASE_REPLICA_MAX_LAG:
        logger.warning("Replica %s lags %.1f s; reading from the primary", alias, lag)
        return False, settings.DATABASE_REPLICA_CHECK_INTERVAL
    return True, settings.DATABASE_REPLICA_CHECK_INTERVAL


class ReplicaRouter:
    """Sends a read to a replica only inside `replica_reads()` and outside any transaction
    on the primary; everything else to the primary."""

    def db_for_read(self, model, **hints):
        # The primary by name, never None: None would let Django read a related object from
        # the database its instance came from (a replica) even inside a transaction.
        if not (_reading.get() and settings.DATABASE_REPLICAS):
            return DEFAULT_DB_ALIAS
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return DEFAULT_DB_ALIAS
        return usable_replica() or DEFAULT_DB_ALIAS

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True  # a replica holds the same rows as the primary

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS
