"""Benchmark: the monthly revenue report over 10,000,000 ledger entries.

    .venv/bin/python bench/revenue_report.py [--accounts 10000] [--entries-per-grant 82] [--keep]

Needs PostgreSQL on 127.0.0.1 (user postgres). Creates its own database and drops it at the
end (the ledger is append-only), migrates it, and seeds with set-based SQL: `--accounts`
accounts with one wallet each, twelve monthly paid grants per account (January to December
2025, 1,000 credits for 10.00 USD each, expiring at the month's end) and `--entries-per-grant`
consume entries per grant spread over its month, then expiry of what is left. The default
makes 10,000 × 12 × (1 + 82 + 1) = 10.08 million ledger entries (grant, consumes, expiry).
`--keep` keeps the database at the end (to EXPLAIN by hand; its name is printed).

Reports: the seeding time, the first posting of the whole ledger (`post_revenue`), a posting
run with nothing new twice — as seeded (no BRIN range of the ledger's txid index summarized:
the seed is one bulk insert, and autovacuum, which summarizes them, may be off, as on the CI
server) and after `brin_summarize_new_values` (what autovacuum does on a live system) — then
the figures Finance opens — the 12-month revenue page (`series`), one month by credit type and by
plan, one month by account (the drill-down) — each the best of 5 runs, and `verify_revenue`
(a full recomputation from the raw ledger). The report reads the posted lines only: its time
does not grow with the ledger. Not a test: results go in bench/RESULTS.md by hand, with the
machine and date.
"""

import argparse
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = f"creditdesk_bench_revenue_{os.getpid()}"
PG = ["-h", "127.0.0.1", "-U", "postgres"]


def psql(sql, db="postgres"):
    subprocess.run(["psql", *PG, "-q", "-d", db, "-c", sql], check=True)


def setup_django():
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["DEBUG"] = "false"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


SEED = """
INSERT INTO catalog_credittype (code, name, created_at, updated_at)
    VALUES ('credits', 'Credits', now(), now());
INSERT INTO accounts_account (external_id, name, email, status, suspended_for_nonpayment,
                              metadata, created_at,
                              updated_at)
    SELECT 'bench-' || a, 'Bench ' || a, '', 'active', false, '{{}}', now(), now()
    FROM generate_series(1, {accounts}) a;
INSERT INTO wallets_wallet (account_id, credit_type_id, balance, held, debt, created_at,
                            updated_at)
    SELECT id, (SELECT id FROM catalog_credittype), 0, 0, 0, now(), now()
    FROM accounts_account;
INSERT INTO wallets_creditgrant (account_id, wallet_id, source, amount, remaining,
    debt_settled, priority, effective_at, expires_at, unit_price, basis_amount, currency,
    reason, created_at)
    SELECT w.account_id, w.id, 'purchase', 1000, 0, 0, 100,
           make_timestamptz(2025, m, 1, 0, 0, 0, 'UTC'),
           make_timestamptz(2025, m, 1, 0, 0, 0, 'UTC') + interval '1 month',
           0.01, 10.00, 'USD', 'bench', make_timestamptz(2025, m, 1, 0, 0, 0, 'UTC')
    FROM wallets_wallet w, generate_series(1, 12) m;
INSERT INTO wallets_ledgerentry (account_id, wallet_id, kind, amount, balance_after,
                                 held_change, grant_id, reason, created_at)
    SELECT account_id, wallet_id, 'grant', amount, amount, 0, id, '', created_at
    FROM wallets_creditgrant;
INSERT INTO wallets_ledgerentry (account_id, wallet_id, kind, amount, balance_after,
                                 held_change, grant_id, reason, created_at)
    SELECT g.account_id, g.wallet_id, 'consume', -(1 + (g.id + i) % 10), 0, 0, g.id, '',
           g.created_at + (i * interval '8 hours')
    FROM wallets_creditgrant g, generate_series(1, {per_grant}) i;
INSERT INTO wallets_ledgerentry (account_id, wallet_id, kind, amount, balance_after,
                                 held_change, grant_id, reason, created_at)
    SELECT g.account_id, g.wallet_id, 'expire', -(1000 + sum(e.amount)), 0, 0, g.id, 'expired',
           g.expires_at
    FROM wallets_creditgrant g JOIN wallets_ledgerentry e ON e.grant_id = g.id
         AND e.kind = 'consume'
    GROUP BY g.id, g.account_id, g.wallet_id, g.expires_at;
ANALYZE;
"""


def best_of(label, run, times=5):
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        run()
        spent.append(time.perf_counter() - start)
    print(f"{label:<48} best {min(spent):7.3f} s   worst {max(spent):7.3f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--entries-per-grant", type=int, default=82)
    parser.add_argument(
        "--keep", action="store_true", help="keep the database at the end (to EXPLAIN by hand)"
    )
    args = parser.parse_args()
    psql(f"CREATE DATABASE {DB}")
    print(f"database {DB}")
    try:
        setup_django()
        from django.db import connection

        from apps.revenue.posting import post_revenue
        from apps.revenue.selectors import month_figures, series
        from apps.revenue.verify import verify_revenue
        from apps.wallets.models import LedgerEntry

        start = time.perf_counter()
        psql(SEED.format(accounts=args.accounts, per_grant=args.entries_per_grant), db=DB)
        entries = LedgerEntry.objects.count()
        print(f"seeded {entries:,} ledger entries in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        counts = post_revenue()
        print(f"first posting of {counts.posted:,} entries: {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        post_revenue()
        print(f"a posting run with nothing new, as seeded: {time.perf_counter() - start:.3f} s")
        start = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT brin_summarize_new_values('ledger_txid'::regclass)")
            ranges = cursor.fetchone()[0]
        print(f"BRIN ranges summarized: {ranges:,} in {time.perf_counter() - start:.1f} s")
        best_of("a posting run with nothing new, summarized", post_revenue)
        december = date(2025, 12, 1)
        best_of(
            "revenue page: 12 months, one currency",
            lambda: series(first=date(2025, 1, 1), last=december, currency="USD"),
        )
        best_of(
            "one month by credit type",
            lambda: month_figures(month=december, dimension="credit_type"),
        )
        best_of("one month by plan", lambda: month_figures(month=december, dimension="plan"))
        best_of(
            "one month by account (drill-down)",
            lambda: month_figures(month=december, dimension="account"),
            times=3,
        )
        figures = month_figures(month=december, currency="USD")[("USD",)]
        print(
            f"December 2025: billed {figures.billed}, recognised {figures.recognised}, "
            f"breakage {figures.breakage}, closing deferred {figures.closing_deferred}"
        )
        start = time.perf_counter()
        problems = verify_revenue()
        print(
            f"verify_revenue (full recomputation): {time.perf_counter() - start:.1f} s, "
            f"{len(problems)} differences"
        )
        connection.close()
    finally:
        if args.keep:
            print(f"kept {DB}: drop it with  psql -h 127.0.0.1 -U postgres -c 'DROP DATABASE {DB}'")
        else:
            psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
