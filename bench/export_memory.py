"""Benchmark: `export_ledger` at 100,000 and 1,000,000 ledger rows: rows/s and peak memory.

    .venv/bin/python bench/export_memory.py [--format csv|jsonl] [--sizes 100000,1000000]

Needs PostgreSQL on 127.0.0.1 (user postgres). Creates its own database and drops it at the
end (the ledger is append-only, so a scratch database is the only way to throw the rows
away), migrates it, and seeds the ledger in one `INSERT ... SELECT generate_series` per size.
For each size it runs `manage.py export_ledger --output <temp file>` as a child process and
reports the rows written, rows/s and the child's peak RSS (from `os.wait4`, the child's own
resource usage). Constant memory means the peak RSS at 1M rows is about the one at 100k.
Not a test: results go in bench/RESULTS.md by hand, with the machine and date.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = f"creditdesk_bench_export_{os.getpid()}"
PG = ["-h", "127.0.0.1", "-U", "postgres"]
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB}"


def psql(sql, db="postgres"):
    subprocess.run(["psql", *PG, "-q", "-d", db, "-c", sql], check=True)


def setup_django():
    os.environ["DATABASE_URL"] = DATABASE_URL
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["DEBUG"] = "false"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed_wallet():
    from decimal import Decimal

    from apps.accounts.models import Account
    from apps.catalog.models import CreditType
    from apps.wallets.services import grant_credits

    credits = CreditType.objects.create(code="credits", name="Credits")
    account = Account.objects.create(external_id="bench-export")
    grant, _ = grant_credits(
        account=account, credit_type=credits, amount=Decimal("1000000000"), source="promo"
    )
    return grant


def seed_ledger(grant, rows):
    """`rows` more consume-like entries of the grant's wallet, one minute apart, with a
    reason that needs CSV quoting."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO wallets_ledgerentry (account_id, wallet_id, kind, amount, balance_after, "
            "held_change, grant_id, reason, created_at) "
            "SELECT %s, %s, 'adjust', -0.125, 1000000000 - i * 0.125, 0, %s, "
            "'bench, row ' || i, now() - interval '1 minute' * i "
            "FROM generate_series(1, %s) AS i",
            [grant.account_id, grant.wallet_id, grant.pk, rows],
        )
        cursor.execute("ANALYZE wallets_ledgerentry")


def export(fmt):
    """Run export_ledger in a child process: (rows written, seconds, peak RSS in MiB)."""
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
    }
    with tempfile.NamedTemporaryFile(suffix=f".{fmt}") as out:
        command = [sys.executable, str(ROOT / "manage.py"), "export_ledger", "--format", fmt,
                   "--output", out.name]  # fmt: skip
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise SystemExit(f"export_ledger failed with {child.returncode}")
        with open(out.name, "rb") as written:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: written.read(1 << 20), b""))
    rows = lines - 1 if fmt == "csv" else lines  # the CSV header
    return rows, seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    parser.add_argument("--sizes", default="100000,1000000")
    options = parser.parse_args()
    sizes = sorted(int(size) for size in options.sizes.split(","))
    psql(f"CREATE DATABASE {DB}")
    try:
        setup_django()
        from django.db import connections

        grant = seed_wallet()
        seeded = 1  # the grant's own entry
        for size in sizes:
            started = time.perf_counter()
            seed_ledger(grant, size - seeded)
            seeded = size
            seeding = time.perf_counter() - started
            rows, seconds, peak = export(options.format)
            print(f"{size:>9,} rows ({options.format}): seeded in {seeding:5.1f} s; exported "
                  f"{rows:,} rows in {seconds:5.1f} s = {rows / seconds:8,.0f} rows/s; "
                  f"peak RSS {peak:6.1f} MiB", flush=True)  # fmt: skip
        connections.close_all()
    finally:
        psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
