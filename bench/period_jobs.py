"""Benchmark: the billing-period jobs on PostgreSQL at scale — `renew_due_subscriptions()` and
`expire_grants()`, wall time and peak memory.

    .venv/bin/python bench/period_jobs.py [--accounts N [N ...]] [--scenarios S ...] [--profile]

Creates (and drops) its own databases, creditdesk_bench_periods (seeded once per N) and
creditdesk_bench_periods_run (a fresh copy of it, `CREATE DATABASE ... TEMPLATE`, per run).
N accounts (default 100,000), bulk-loaded in raw SQL, each with:
  - one monthly plan shared by all (1000 credits a period, rollover 50 %, cap 300, rolled-over
    credits expire after 1 period) and an active subscription to it whose period [start, end)
    ended one hour before the load;
  - that period's plan_period grant, 1000 credits of which 400 are left, with the rollover
    terms, reference and expiry the renewal service itself gives it;
  - a purchase grant of 500 credits, all left, expired half an hour before the load;
  - a wallet of balance 900, and ledger entries grant +1000, consume -600, grant +500.
`ledger_violations()` is checked clean on the seeded data. Then three runs, each in a fresh
process on a fresh copy of the data, calling the services as the scheduler does:
  renew          renew_due_subscriptions() alone (it also closes the expired pack grant);
  expire         expire_grants() alone (it closes both grants, rolling the plan's over);
  renew+expire   renew_due_subscriptions() then expire_grants(), as run_period_jobs orders them.
Each run prints one line: N, seconds, subscriptions (accounts) per second and peak memory.
Peak memory is the growth of the process's peak RSS (resource.getrusage ru_maxrss) during the
timed jobs above the RSS they started from, in a process of its own, set up and connected, whose
high-water mark is reset just before (/proc/self/clear_refs); the process's peak RSS follows
in brackets. After each run it checks, untimed: every subscription
advanced one period (or, for expire alone, none did), rolled over = N × 200 credits
(min(400 × 50 %, 300)), expired = N × (200 + 500), every wallet's balance, nothing left due,
no failures, and `ledger_violations()` empty.

Targets: renew+expire ≤ 60 s for 100,000 subscriptions; the 100k run's peak memory within
1.5× of the 10k run's (the jobs work in chunks, so memory must not grow with N). With several
N (`--accounts 10000 100000`) the memory ratio of the last to the first is printed.
`--profile`: run renew+expire only, under cProfile, and print the top 25 by cumulative time.
Not a test: results go in bench/RESULTS.md by hand, with the machine and date.
"""

import argparse
import cProfile
import json
import os
import pstats
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BASE_DB = "creditdesk_bench_periods"
RUN_DB = "creditdesk_bench_periods_run"
PG = ["-h", "127.0.0.1", "-U", "postgres"]
SCENARIOS = ("renew", "expire", "renew+expire")

PLAN_CREDITS = Decimal(1000)
LEFT = Decimal(400)  # of the plan grant, at period end
PACK_CREDITS = Decimal(500)
ROLLED = Decimal(200)  # min(400 × 50 %, 300)
EXPIRED = (LEFT - ROLLED) + PACK_CREDITS


def psql(sql):
    subprocess.run(["psql", *PG, "-q", "-d", "postgres", "-c", sql], check=True)


def setup_django(db, *, migrate=False):
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{db}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["DEBUG"] = "false"
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def mb(kilobytes):
    return kilobytes / 1024  # ru_maxrss is in KiB on Linux


def reset_peak_rss():
    """Reset the process's RSS high-water mark (ru_maxrss, VmHWM) to its current RSS, so that
    what Django's setup and imports peaked at does not hide the jobs' own peak; returns the
    current RSS in KiB (the baseline of the delta)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # Linux ≥ 4.0: "reset the peak resident set size"
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


# --- seeding (parent process) ---------------------------------------------------------------


def periods(now):
    """The ended period: [start, end) with end about an hour before `now`, anchored at start."""
    from dateutil.relativedelta import relativedelta

    from apps.periods.calendar import boundary

    start = now - timedelta(hours=1) - relativedelta(months=1)
    end = boundary(anchor=start, interval="month", index=1)
    return start, end


def populate(accounts):
    """Bulk-load `accounts` accounts as the module docstring says; returns the period start."""
    from django.db import connection

    from apps.accounts.models import Subscription
    from apps.catalog.contracts import period_terms
    from apps.catalog.models import CreditPack, CreditType, Plan, PlanAllowance
    from apps.periods.services import period_grants

    now = datetime.now(UTC).replace(microsecond=0)
    start, end = periods(now)
    credits = CreditType.objects.create(code="credits", name="Credits")
    plan = Plan.objects.create(
        code="bench_monthly", name="Bench monthly", billing_interval="month",
        price=Decimal("49.00"), rollover_percent=Decimal(50), rollover_cap=Decimal(300),
        rollover_expires_after_periods=1,
    )  # fmt: skip
    allowance = PlanAllowance.objects.create(
        plan=plan, credit_type=credits, credits_per_period=PLAN_CREDITS
    )
    pack = CreditPack.objects.create(
        code="bench_pack", name="Bench pack", credit_type=credits, credits=PACK_CREDITS,
        price=Decimal("10.00"), expires_after_days=30,
    )  # fmt: skip
    # The period grant's terms exactly as the renewal service makes them (reference aside,
    # which names the subscription and is built per row below).
    model = Subscription(pk=0, plan=plan, billing_anchor=start, current_period_start=start,
                         current_period_end=end)  # fmt: skip
    [(_, terms)], _ = period_grants(
        model, period_terms(plan=plan, allowances=[allowance], at=start), start, end, start
    )
    ref_suffix = terms.reference.removeprefix("period:0")  # ":<start>:credits"
    pack_expires = now - timedelta(minutes=30)
    pack_bought = pack_expires - timedelta(days=pack.expires_after_days)
    pack_unit_price = (pack.price / pack.credits).quantize(Decimal("0.0000000001"))

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO accounts_account (external_id, name, email, status, metadata, "
            "created_at, updated_at) SELECT 'bench-' || i, '', '', 'active', '{}', %s, %s "
            "FROM generate_series(1, %s) i",
            [start, start, accounts],
        )
        cursor.execute(
            "INSERT INTO accounts_subscription (account_id, plan_id, status, "
            "current_period_start, current_period_end, billing_anchor, cancel_at_period_end, "
            "created_at, updated_at) SELECT id, %s, 'active', %s, %s, %s, false, %s, %s "
            "FROM accounts_account ORDER BY id",
            [plan.pk, start, end, start, start, start],
        )
        cursor.execute(
            "INSERT INTO wallets_wallet (account_id, credit_type_id, balance, held, debt, "
            "created_at, updated_at) SELECT id, %s, %s, 0, 0, %s, %s FROM accounts_account "
            "ORDER BY id",
            [credits.pk, LEFT + PACK_CREDITS, start, now],
        )
        cursor.execute(
            "INSERT INTO wallets_creditgrant (account_id, wallet_id, source, amount, remaining, "
            "debt_settled, priority, effective_at, expires_at, unit_price, currency, reference, "
            "reason, rollover_percent, rollover_cap, rollover_expires_at, created_at) "
            "SELECT s.account_id, w.id, 'plan_period', %s, %s, 0, %s, %s, %s, %s, %s, "
            "'period:' || s.id || %s, %s, %s, %s, %s, %s "
            "FROM accounts_subscription s JOIN wallets_wallet w ON w.account_id = s.account_id "
            "ORDER BY w.id",
            [terms.amount, LEFT, terms.priority, terms.effective_at, terms.expires_at,
             terms.unit_price, terms.currency, ref_suffix, terms.reason, terms.rollover_percent,
             terms.rollover_cap, terms.rollover_expires_at, start],
        )  # fmt: skip
        cursor.execute(
            "INSERT INTO wallets_creditgrant (account_id, wallet_id, source, amount, remaining, "
            "debt_settled, priority, effective_at, expires_at, unit_price, currency, reference, "
            "reason, created_at) SELECT account_id, id, 'purchase', %s, %s, 0, 100, %s, %s, %s, "
            "%s, 'bench-pack:' || account_id, %s, %s FROM wallets_wallet ORDER BY id",
            [PACK_CREDITS, PACK_CREDITS, pack_bought, pack_expires, pack_unit_price,
             pack.currency, f"Purchased {pack.name}", pack_bought],
        )  # fmt: skip
        # Per wallet, in id order: grant +1000, consume -600, grant +500 (three statements, so
        # that every wallet's entries come in that order and balance_after runs 1000, 400, 900).
        entry = (
            "INSERT INTO wallets_ledgerentry (account_id, wallet_id, kind, amount, "
            "balance_after, held_change, grant_id, reason, created_at) "
            "SELECT account_id, wallet_id, %s, %s, %s, 0, id, %s, %s FROM wallets_creditgrant "
            "WHERE source = %s ORDER BY wallet_id"
        )
        used = PLAN_CREDITS - LEFT
        cursor.execute(entry, ["grant", PLAN_CREDITS, PLAN_CREDITS, terms.reason, start,
                               "plan_period"])  # fmt: skip
        cursor.execute(entry, ["consume", -used, LEFT, "", start + timedelta(days=1),
                               "plan_period"])  # fmt: skip
        cursor.execute(entry, ["grant", PACK_CREDITS, LEFT + PACK_CREDITS, "", pack_bought,
                               "purchase"])  # fmt: skip
        cursor.execute("VACUUM ANALYZE")
    return start, end


def seed(accounts):
    """Create, migrate and fill the base database; check the ledger; returns the period."""
    from django.db import connections

    from apps.wallets.selectors import ledger_violations

    connections.close_all()
    psql(f"DROP DATABASE IF EXISTS {BASE_DB}")
    psql(f"CREATE DATABASE {BASE_DB}")
    from django.core.management import call_command

    started = time.monotonic()
    call_command("migrate", verbosity=0)
    migrated = time.monotonic()
    start, end = populate(accounts)
    loaded = time.monotonic()
    problems = ledger_violations()
    checked = time.monotonic()
    connections.close_all()  # a template must have no other connection
    if problems:
        raise SystemExit(f"seeded ledger is not clean: {problems[:5]}")
    print(
        f"seeded N={accounts}: migrate {migrated - started:.1f} s, load {loaded - migrated:.1f} s,"
        f" ledger_violations() clean in {checked - loaded:.1f} s",
        flush=True,
    )
    return start, end


# --- one run (child process) ----------------------------------------------------------------


def run(scenario, accounts, start, end, profile):
    """Time `scenario` on RUN_DB, check what it did; returns a dict for the parent."""
    setup_django(RUN_DB)
    from dateutil.relativedelta import relativedelta
    from django.db import connection
    from django.db.models import Count, Max, Min, Sum
    from django.utils import timezone

    from apps.accounts.models import Subscription
    from apps.jobs.counts import JobCounts
    from apps.periods.services import renew_due_subscriptions
    from apps.wallets.models import CreditGrant, Wallet
    from apps.wallets.selectors import ledger_violations
    from apps.wallets.services import expire_grants

    connection.ensure_connection()
    Subscription.objects.exists()  # first query's imports and caches out of the timing
    steps = {"renew": [renew_due_subscriptions], "expire": [expire_grants],
             "renew+expire": [renew_due_subscriptions, expire_grants]}[scenario]  # fmt: skip
    profiler = cProfile.Profile() if profile else None
    rss_before = reset_peak_rss()
    results, total = [], JobCounts()
    started = time.monotonic()
    if profiler:
        profiler.enable()
    for step in steps:
        t0 = time.monotonic()
        counts = step()
        results.append((step.__name__, time.monotonic() - t0, counts))
    if profiler:
        profiler.disable()
    seconds = time.monotonic() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    # --- correctness, untimed
    for _, _, c in results:
        for name in ("renewed", "periods", "rolled_over", "expired", "grants_expired",
                     "failures"):  # fmt: skip
            setattr(total, name, getattr(total, name) + getattr(c, name))
        total.errors += c.errors
    renewed = scenario != "expire"
    errors = []

    def expect(what, got, want):
        if got != want:
            errors.append(f"{what}: {got} != {want}")

    expect("failures", total.failures, 0)
    expect("renewed", total.renewed, accounts if renewed else 0)
    expect("periods", total.periods, accounts if renewed else 0)
    expect("rolled over", total.rolled_over, accounts * ROLLED)
    expect("expired", total.expired, accounts * EXPIRED)
    expect("grants expired", total.grants_expired, 2 * accounts)
    new_end = start + relativedelta(months=2)
    want_period = (end, new_end) if renewed else (start, end)
    expect(
        "subscriptions in the expected period",
        Subscription.objects.filter(
            status="active",
            current_period_start=want_period[0],
            current_period_end=want_period[1],
        ).count(),
        accounts,
    )
    rollovers = CreditGrant.objects.filter(source="rollover").aggregate(
        n=Count("id"), credits=Sum("amount"), left=Sum("remaining")
    )
    expect("rollover grants", rollovers["n"], accounts)
    expect("rolled-over credits", rollovers["credits"], accounts * ROLLED)
    expect("rolled-over credits left", rollovers["left"], accounts * ROLLED)
    balance = ROLLED + (PLAN_CREDITS if renewed else 0)
    wallets = Wallet.objects.aggregate(lo=Min("balance"), hi=Max("balance"), n=Count("id"))
    expect("wallet balances", (wallets["lo"], wallets["hi"], wallets["n"]),
           (balance, balance, accounts))  # fmt: skip
    expect(
        "grants still due",
        CreditGrant.objects.filter(remaining__gt=0, expires_at__lte=timezone.now()).count(),
        0,
    )
    if renewed:
        expect(
            "new period grants",
            CreditGrant.objects.filter(
                source="plan_period", effective_at=end, remaining=PLAN_CREDITS
            ).count(),
            accounts,
        )
    t0 = time.monotonic()
    problems = ledger_violations()
    verify_seconds = time.monotonic() - t0
    if problems:
        errors.append(f"ledger_violations(): {len(problems)}, e.g. {problems[:3]}")

    if profiler:
        print(f"--- cProfile, {scenario}, N={accounts} (top 25 by cumulative time) ---")
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats("cumulative").print_stats(25)
        stats.sort_stats("tottime").print_stats(30)
    return {
        "scenario": scenario,
        "accounts": accounts,
        "seconds": seconds,
        "steps": [(name, s, c.as_dict()) for name, s, c in results],
        "peak_mb": mb(rss_after - rss_before),
        "process_peak_mb": mb(rss_after),
        "verify_seconds": verify_seconds,
        "errors": errors,
    }


def child(args):
    start, end = datetime.fromisoformat(args.start), datetime.fromisoformat(args.end)
    result = run(args.child, args.accounts[0], start, end, args.profile)
    print("RESULT " + json.dumps(result), flush=True)


def spawn(scenario, accounts, start, end, profile):
    psql(f"DROP DATABASE IF EXISTS {RUN_DB}")
    psql(f"CREATE DATABASE {RUN_DB} TEMPLATE {BASE_DB}")
    try:
        command = [sys.executable, str(Path(__file__).resolve()), "--child", scenario,
                   "--accounts", str(accounts), "--start", start.isoformat(),
                   "--end", end.isoformat()]  # fmt: skip
        if profile:
            command.append("--profile")
        out = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout
    finally:
        psql(f"DROP DATABASE IF EXISTS {RUN_DB}")
    result = None
    for line in out.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line.removeprefix("RESULT "))
        else:
            print(line)
    return result


def line(r):
    n, s = r["accounts"], r["seconds"]
    steps = ", ".join(f"{name} {sec:.1f} s" for name, sec, _ in r["steps"])
    return (
        f"period jobs N={n} {r['scenario']:<12} {s:7.1f} s {n / s:8.0f} subs/s  "
        f"peak +{r['peak_mb']:.1f} MB ru_maxrss delta ({r['process_peak_mb']:.0f} MB process)"
        + (f"  [{steps}]" if len(r["steps"]) > 1 else "")
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[100000])
    parser.add_argument("--profile", action="store_true",
                        help="renew+expire only, under cProfile: top 25 cumulative")  # fmt: skip
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS),
                        help="which runs to make (default: all three)")  # fmt: skip
    parser.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--start", help=argparse.SUPPRESS)
    parser.add_argument("--end", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    setup_django(BASE_DB)
    results, failed = [], False
    try:
        for accounts in args.accounts:
            start, end = seed(accounts)
            for scenario in ("renew+expire",) if args.profile else args.scenarios:
                r = spawn(scenario, accounts, start, end, args.profile)
                results.append(r)
                print(line(r), flush=True)
                for name, _, counts in r["steps"]:
                    print(f"    {name}: {counts}")
                verdict = "FAILED " + "; ".join(r["errors"]) if r["errors"] else "all passed"
                print(f"    checks: ledger_violations() in {r['verify_seconds']:.1f} s; {verdict}")
                failed |= bool(r["errors"])
    finally:
        from django.db import connections

        connections.close_all()
        psql(f"DROP DATABASE IF EXISTS {RUN_DB}")
        psql(f"DROP DATABASE IF EXISTS {BASE_DB}")

    both = [r for r in results if r["scenario"] == "renew+expire"]
    for r in both:
        if r["accounts"] == 100000 and not args.profile:
            verdict = "met" if r["seconds"] <= 60 else "MISSED"
            print(f"target renew+expire ≤ 60 s at 100k: {r['seconds']:.1f} s, {verdict}")
    if len(both) > 1 and not args.profile:
        small, large = both[0], both[-1]
        ratio = large["peak_mb"] / small["peak_mb"] if small["peak_mb"] else float("inf")
        print(
            f"target peak memory N={large['accounts']} within 1.5x of N={small['accounts']}: "
            f"{large['peak_mb']:.1f} / {small['peak_mb']:.1f} MB = {ratio:.2f}x, "
            + ("met" if ratio <= 1.5 else "MISSED")
        )
    if failed:
        raise SystemExit("correctness checks failed")


if __name__ == "__main__":
    main()
