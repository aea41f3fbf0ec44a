"""balance.low and balance.depleted: a job compares each wallet's available credits with
its threshold (the account's, else its plan's) and fires an event when the wallet enters a
level, once per crossing: the BalanceAlert row remembers the level until the wallet climbs
back above it. A job rather than a check in every consume: the hot path stays one
statement, at the price of up to a minute's delay (a dip that recovers within the minute
fires nothing)."""

from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Subquery
from django.db.models.functions import Coalesce

from apps.accounts.models import Subscription
from apps.core import clock
from apps.core.decimals import format_decimal
from apps.jobs.counts import JobCounts
from apps.wallets.models import Wallet

from .models import BalanceAlert, WebhookEndpoint
from .services import record_events

LOW, DEPLETED = BalanceAlert.Level.LOW, BalanceAlert.Level.DEPLETED
SEVERITY = {None: 0, LOW: 1, DEPLETED: 2}


ALERTS_LOCK = "creditdesk.check_balance_alerts"  # the advisory lock's name


def level_of(available, threshold):
    if available <= 0:
        return DEPLETED
    if threshold is not None and available <= threshold:
        return LOW
    return None


def check_balance_alerts(*, now=None, chunk_size=1000, on_chunk=None):
    """Fire balance.low / balance.depleted for wallets that entered a level since the last
    run, for accounts with an active endpoint; re-arm those that left it. Never two copies
    on a chunk at once: a copy that finds another working returns, and the other does the
    run's work."""
    now = now or clock.now()
    counts = JobCounts()
    after = 0
    while True:
        with transaction.atomic(durable=True):
            if not _alone(ALERTS_LOCK):
                return counts
            rows = _wallets(after, chunk_size)
            if not rows:
                return counts
            after = rows[-1][0]
            _apply(rows, now, counts)
        counts.chunks += 1
        if on_chunk is not None:
            on_chunk(counts)


def _wallets(after, limit):
    plan_threshold = Subscription.objects.filter(
        account=OuterRef("account_id"), status__in=Subscription.LIVE_STATUSES
    ).values("plan__low_balance_threshold")[:1]
    level = BalanceAlert.objects.filter(wallet=OuterRef("pk")).values("level")[:1]
    wallets = Wallet.objects.filter(pk__gt=after)
    if not WebhookEndpoint.objects.filter(account__isnull=True, active=True).exists():
        # Without an endpoint for every account, only accounts with one of their own.
        wallets = wallets.filter(
            Exists(WebhookEndpoint.objects.filter(account=OuterRef("account_id"), active=True))
        )
    return list(
        wallets.annotate(
            _threshold=Coalesce(F("account__low_balance_threshold"), Subquery(plan_threshold)),
            _level=Subquery(level),
        )
        .order_by("pk")
        .values_list(
            "pk", "account_id", "credit_type__code", "balance", "held", "_threshold", "_level"
        )[:limit]
    )


def _apply(rows, now, counts):
    events, entered, left = [], [], []
    for pk, account_id, credit_type, balance, held, threshold, previous in rows:
        available = balance - held
        level = level_of(available, threshold)
        if level == previous:
            continue
        if level is None:
            left.append(pk)
            continue
        entered.append(BalanceAlert(wallet_id=pk, level=level, since=now))
        if SEVERITY[level] < SEVERITY[previous]:
            continue  # climbed from empty to low: no line was crossed downwards
        data = {
            "credit_type": credit_type,
            "available": format_decimal(available),
            "threshold": None if threshold is None else format_decimal(threshold),
        }
        if previous is None and threshold is not None:
            events.append((account_id, "balance.low", data))
        if level == DEPLETED:
            events.append((account_id, "balance.depleted", data))
    if left:
        BalanceAlert.objects.filter(wallet_id__in=left).delete()
    if entered:
        BalanceAlert.objects.bulk_create(
            entered,
            update_conflicts=True,
            unique_fields=["wallet"],
            update_fields=["level", "since"],
        )
    record_events(events=events, now=now)
    counts.alerts += len(events)


def _alone(name):
    """Whether this transaction is the only one checking alerts: a transaction-scoped
    advisory lock on PostgreSQL, released by the chunk's commit. (A session lock would stay
    with the server connection behind a transaction-mode pooler, which hands it to other
    clients: the next run would find it held forever.) A copy that starts between another's
    chunks takes over from the start; it writes nothing twice, since each wallet's level is
    recorded (BalanceAlert) in the chunk that fires its event. SQLite's writers queue."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))", [name])
        return cursor.fetchone()[0]
