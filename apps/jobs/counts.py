"""What a scheduled job did, counted the same way by every job (JobRun.counts keeps it),
and running a job's chunks on several connections at once."""

import threading
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal

from django.conf import settings
from django.db import connection, connections

from apps.core.decimals import format_decimal

MAX_ERRORS_KEPT = 20


@dataclass
class JobCounts:
    renewed: int = 0  # subscriptions moved into a new period (or canceled at its end)
    periods: int = 0  # periods granted: a catch-up over three missed periods counts three
    canceled: int = 0
    granted: Decimal = Decimal(0)  # credits granted for new periods
    rolled_over: Decimal = Decimal(0)
    expired: Decimal = Decimal(0)  # breakage
    grants_expired: int = 0
    reservations_released: int = 0
    alerts: int = 0  # balance.low / balance.depleted events fired
    deliveries: int = 0  # webhook deliveries queued again
    suspended: int = 0  # accounts suspended for a subscription past due beyond its grace
    overage: Decimal = Decimal(0)  # overage credits billed at period end
    invoice_items: int = 0  # overage charges sent to Stripe
    recharges: int = 0  # packs bought by auto-recharge
    published: int = 0  # tasks the outbox sweeper handed to the broker
    trial_notices: int = 0  # trial.ending events recorded
    stripe_prices: int = 0  # Stripe subscriptions moved onto or off a contract's price
    posted: int = 0  # ledger entries posted into revenue lines
    fees_posted: int = 0  # platform fees posted into fee lines (written or cut since)
    stale_simulations: int = 0  # simulation runs ended as failed: their workers went silent
    problems: int = 0  # differences a verification found (the ledger's invariants, revenue)
    chunks: int = 0
    failures: int = 0
    errors: list = field(default_factory=list)

    def tally(self, entries):
        """Count what ledger entries about to be written roll over and expire."""
        for entry in entries:
            if entry.kind == "expire":
                self.expired -= entry.amount
                self.grants_expired += 1
            elif entry.kind == "rollover" and entry.amount < 0:
                self.rolled_over -= entry.amount

    def fail(self, what, error):
        self.failures += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(f"{what}: {type(error).__name__}: {error}")

    def problem(self, text):
        """A difference a verification found: the run fails, the first ones kept."""
        self.problems += 1
        self.failures += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(text)

    def copy(self):
        return replace(self, errors=list(self.errors))

    def restore(self, earlier):
        self.__dict__.update(earlier.copy().__dict__)

    @classmethod
    def merged(cls, parts):
        total = cls()
        for part in parts:
            for f in fields(cls):
                if f.name == "errors":
                    total.errors += part.errors[: MAX_ERRORS_KEPT - len(total.errors)]
                else:
                    setattr(total, f.name, getattr(total, f.name) + getattr(part, f.name))
        return total

    def as_dict(self):
        """The non-zero counts, JSON-ready (Decimals as strings)."""
        return {
            name: format_decimal(value) if isinstance(value, Decimal) else value
            for name, value in self.__dict__.items()
            if value
        }


def in_parallel(run, *, on_chunk=None, workers=None):
    """Run `run(counts, on_chunk)` on `workers` threads at once (PERIOD_JOB_WORKERS), each
    with its own database connection, and return their merged counts. The jobs claim their
    chunks with SKIP LOCKED, so copies share the work without coordination; while one waits
    on PostgreSQL another runs Python. Runs inline on SQLite (one writer at a time anyway)
    and inside a transaction (other connections could not see its rows)."""
    workers = settings.PERIOD_JOB_WORKERS if workers is None else workers
    if workers <= 1 or connection.vendor != "postgresql" or connection.in_atomic_block:
        counts = JobCounts()
        run(counts, on_chunk)
        return counts
    parts = [JobCounts() for _ in range(workers)]
    lock, failures = threading.Lock(), []

    def progress(_):
        if on_chunk is not None:
            with lock:
                on_chunk(JobCounts.merged(parts))

    def worker(part):
        try:
            run(part, progress)
        except BaseException as error:  # noqa: BLE001 - handed to the caller below
            failures.append(error)
        finally:
            connections.close_all()  # this thread's connections

    threads = [threading.Thread(target=worker, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return JobCounts.merged(parts)
