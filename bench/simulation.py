"""Benchmark: the pricing simulator's replay on PostgreSQL — N usage events over A accounts
replayed under a draft, wall time and peak memory.

    .venv/bin/python bench/simulation.py [--accounts 10000] [--events 1000000] [--chunk 1000]
                                         [--workers 2] [--profile] [--reseed]
    REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/simulation.py --celery

Creates its own database, creditdesk_bench_simulation (seeded once per A and N; --reseed
forces it), bulk-loaded in raw SQL: one monthly plan (10,000 credits a period, no rollover,
API calls at 1 credit), A accounts subscribed since 2026-09-15 (so October holds a
renewal, on the 15th), and N/A usage events per account spread over October 2026 with their
consume entries, the period grants of September 15 and October 15, and the expiry of what
was left of September's: a ledger the simulator can replay exactly. Then, timed, in this
process: the simulation of October under the live catalog (checked: every account's
figures equal the ledger's) and under a draft that raises the API call to 1.5 credits and
halves the plan's credits. Prints events per second, seconds per run and the peak memory
growth (the replay works by chunks of accounts: memory must not grow with A).

Target (issue 18): 1,000,000 events over 10,000 accounts in at most 30 s.
Not a test: results go in bench/RESULTS.md by hand, with the machine and date.
"""

import argparse
import cProfile
import os
import pstats
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "creditdesk_bench_simulation"
PG = ["-h", "127.0.0.1", "-U", "postgres"]
START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, tzinfo=UTC)
ANCHOR = datetime(2026, 9, 15, tzinfo=UTC)
RENEWED = datetime(2026, 10, 15, tzinfo=UTC)
NEXT = datetime(2026, 11, 15, tzinfo=UTC)
CREDITS = 10000

CATALOG = """
version: 1
credit_types:
- {{code: credits, name: Credits}}
features:
- {{code: api_call, name: API call, credit_type: credits, credits_per_unit: "1"}}
plans:
- code: bench
  name: Bench
  price: 100
  included_credits: {{credits: {credits}}}
  overage: {{policy: allow, limit: 100000, unit_price: "0.01"}}
  features:
  - {{feature: api_call, credits_per_unit: "{cost}"}}
"""


def psql(sql, db="postgres"):
    out = subprocess.run(["psql", *PG, "-qAt", "-d", db, "-c", sql], check=True,
                         capture_output=True, text=True)  # fmt: skip
    return out.stdout.strip()


def setup_django():
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["DEBUG"] = "false"
    import django

    django.setup()


def seeded(accounts, events):
    exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB}'")
    if not exists:
        return False
    try:
        return psql("SELECT value FROM bench_seed", DB) == f"{accounts}:{events}"
    except subprocess.CalledProcessError:
        return False


def seed(accounts, events):
    psql(f"DROP DATABASE IF EXISTS {DB}")
    psql(f"CREATE DATABASE {DB}")
    setup_django()
    from django.core.management import call_command
    from django.db import connection

    from apps.catalog.models import Plan
    from apps.catalog.pricebook import read_document
    from apps.catalog.services import import_catalog

    started = time.monotonic()
    call_command("migrate", verbosity=0)
    import_catalog(raw=read_document(CATALOG.format(credits=CREDITS, cost="1"),
                                     filename="catalog.yaml"))  # fmt: skip
    plan = Plan.objects.get(code="bench")
    per_account = events // accounts
    step = (END - START) / per_account
    with connection.cursor() as c:
        c.execute("SELECT id, credit_type_id FROM catalog_feature WHERE code = 'api_call'")
        feature, credit_type = c.fetchone()
        c.execute(
            "INSERT INTO accounts_account (external_id, name, email, status, "
            "suspended_for_nonpayment, metadata, created_at, updated_at) SELECT 'bench-' || i, "
            "'', '', 'active', false, '{}', %s, %s FROM generate_series(1, %s) i",
            [ANCHOR, ANCHOR, accounts],
        )
        c.execute(
            "INSERT INTO accounts_subscription (account_id, plan_id, status, "
            "current_period_start, current_period_end, billing_anchor, cancel_at_period_end, "
            "stripe_subscription_id, created_at, updated_at) SELECT id, %s, 'active', %s, %s, "
            "%s, false, NULL, %s, %s FROM accounts_account",
            [plan.pk, NEXT, datetime(2026, 12, 15, tzinfo=UTC), ANCHOR, ANCHOR, ANCHOR],
        )
        c.execute(
            "INSERT INTO wallets_wallet (account_id, credit_type_id, balance, held, debt, "
            "created_at, updated_at) SELECT id, %s, 0, 0, 0, %s, %s FROM accounts_account",
            [credit_type, ANCHOR, ANCHOR],
        )
        for effective, expires in ((ANCHOR, RENEWED), (RENEWED, NEXT)):
            c.execute(
                "INSERT INTO wallets_creditgrant (account_id, wallet_id, source, amount, "
                "remaining, debt_settled, priority, effective_at, expires_at, unit_price, "
                "basis_amount, currency, plan_id, reference, reason, created_at) "
                "SELECT w.account_id, w.id, 'plan_period', %s, %s, 0, 100, %s, %s, 0.01, 100, "
                "'USD', %s, 'period:' || s.id || ':' || %s || ':credits', '', %s "
                "FROM wallets_wallet w JOIN accounts_subscription s ON s.account_id = "
                "w.account_id",
                [CREDITS, CREDITS, effective, expires, plan.pk,
                 effective.strftime("%Y-%m-%dT%H:%M:%SZ"), effective],
            )  # fmt: skip
        # N/A events per account, 1 to 5 units each, spread evenly over October.
        c.execute(
            "INSERT INTO usage_usageevent (account_id, feature_id, credit_type_id, quantity, "
            "credits_per_unit, credits, balance_after, available_after, fingerprint, metadata, "
            "occurred_at, created_at) SELECT a.id, %s, %s, 1 + (i %% 5), 1, 1 + (i %% 5), 0, 0, "
            "'', '{}', %s + (i * %s) + (a.id %% 1000) * interval '1 millisecond', "
            "%s + (i * %s) + (a.id %% 1000) * interval '1 millisecond' "
            "FROM accounts_account a CROSS JOIN generate_series(0, %s) i",
            [feature, credit_type, START, step, START, step, per_account - 1],
        )
        grant = (
            "(SELECT g.id FROM wallets_creditgrant g WHERE g.account_id = e.account_id AND "
            "g.effective_at = CASE WHEN e.created_at < %s THEN %s ELSE %s END)"
        )
        # Ledger, per wallet in time order: the two grants, the consumes, the expiry.
        c.execute(
            "INSERT INTO wallets_ledgerentry (account_id, wallet_id, kind, amount, "
            "balance_after, held_change, grant_id, reason, created_at) SELECT g.account_id, "
            "g.wallet_id, 'grant', g.amount, g.amount, 0, g.id, '', g.created_at "
            "FROM wallets_creditgrant g"
        )  # balance_after: only September's, the state before October, is read
        c.execute(
            "INSERT INTO wallets_ledgerentry (account_id, wallet_id, kind, amount, "
            "balance_after, held_change, grant_id, usage_event_id, reason, created_at) "
            f"SELECT e.account_id, w.id, 'consume', -e.credits, 0, 0, {grant}, e.id, '', "
            "e.created_at FROM usage_usageevent e JOIN wallets_wallet w ON w.account_id = "
            "e.account_id ORDER BY e.created_at",
            [RENEWED, ANCHOR, RENEWED],
        )
        used = (
            "(SELECT COALESCE(sum(-l.amount), 0) FROM wallets_ledgerentry l WHERE l.grant_id = "
            "g.id AND l.kind = 'consume')"
        )
        c.execute(f"UPDATE wallets_creditgrant g SET remaining = amount - {used}")
        c.execute(
            "INSERT INTO wallets_ledgerentry (account_id, wallet_id, kind, amount, "
            "balance_after, held_change, grant_id, reason, created_at) SELECT g.account_id, "
            "g.wallet_id, 'expire', -g.remaining, 0, 0, g.id, 'expired', %s "
            "FROM wallets_creditgrant g WHERE g.effective_at = %s",
            [RENEWED, ANCHOR],
        )
        c.execute("UPDATE wallets_creditgrant SET remaining = 0 WHERE effective_at = %s", [ANCHOR])
        c.execute("CREATE TABLE bench_seed (value text)")
        c.execute("INSERT INTO bench_seed VALUES (%s)", [f"{accounts}:{events}"])
    connection.close()
    psql("VACUUM ANALYZE", DB)
    print(f"seeded {accounts} accounts, {events} events in {time.monotonic() - started:.0f} s")


def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def children_peak_kib():
    """The largest peak RSS of the worker processes that have ended (ru_maxrss, KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=10000)
    parser.add_argument("--events", type=int, default=1000000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument(
        "--celery",
        action="store_true",
        help="Time a run as the admin starts it: start_run, then two Celery "
        "worker processes (a worker started here, on REDIS_URL) until done.",
    )
    args = parser.parse_args()
    if args.reseed or not seeded(args.accounts, args.events):
        seed(args.accounts, args.events)
    else:
        setup_django()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)  # a database seeded by an earlier release
    if args.celery:
        return time_celery_run()
    from apps.accounts.models import Account
    from apps.catalog.pricebook import read_document
    from apps.simulation.replay import simulate

    ids = list(Account.objects.order_by("pk").values_list("pk", flat=True))
    draft = read_document(CATALOG.format(credits=CREDITS // 2, cost="1.5"),
                          filename="draft.yaml")  # fmt: skip
    for name, raw in (("live catalog", None), ("draft", draft)):
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        profiler = cProfile.Profile() if args.profile else None
        started = time.monotonic()
        if profiler:
            profiler.enable()
        results = list(simulate(raw=raw, account_ids=ids, start=START, end=END,
                                chunk_size=args.chunk, workers=args.workers))  # fmt: skip
        if profiler:
            profiler.disable()
        seconds = time.monotonic() - started
        events = sum(r.real.events for r in results)
        differ = sum(r.real.as_dict() != r.draft.as_dict() for r in results)
        print(
            f"{name}: {events:,} events over {len(results):,} accounts in {seconds:.1f} s "
            f"({events / seconds:,.0f} events/s); peak RSS {peak_kib() / 1024:.0f} MiB "
            f"(workers: {children_peak_kib() / 1024:.0f} MiB each at most); "
            f"accounts whose figures differ from the ledger: {differ:,}",
            flush=True,
        )
        if profiler:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def time_celery_run():
    """A run through the product's own path: queued by `start_run`, claimed by the run's task,
    its chunks spread over a worker of two processes."""
    from apps.simulation.models import SimulationRun
    from apps.simulation.services import start_run

    if not os.environ.get("REDIS_URL"):
        raise SystemExit("--celery needs REDIS_URL (the broker the worker listens on)")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-c", "2", "-l", "warning"],
        cwd=ROOT, env=os.environ.copy(),
    )  # fmt: skip
    try:
        time.sleep(5)  # the worker's processes up
        started = time.monotonic()
        run = start_run(title="bench", draft_text=CATALOG.format(credits=CREDITS // 2, cost="1.5"),
                        starts_at=START, ends_at=END)  # fmt: skip
        while run.status not in SimulationRun.FINISHED:
            time.sleep(0.2)
            run.refresh_from_db()
        seconds = time.monotonic() - started
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    print(f"Celery run: {run.status}, {run.accounts_done:,} accounts, "
          f"{int(run.totals['draft']['events']) if run.totals else 0:,} events in "
          f"{seconds:.1f} s (start_run to done, 2 worker processes)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
