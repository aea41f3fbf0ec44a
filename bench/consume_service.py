"""Benchmark: consumes/s of the `consume` service on PostgreSQL, beside the raw-SQL yardstick.

    .venv/bin/python bench/consume_service.py [--seconds 15] [--threads 16] [--accounts 10000]

Creates (and drops) its own database, fills it with accounts that each hold one large grant,
then for `--seconds` runs `--threads` threads calling `consume` (1) on random accounts and
(2) all on one hot account, then (3) `consume_batch` with 500 events for one account. Runs
bench/yardstick.sh with the same shapes in the same invocation and prints ratios.
Not a test: results go in bench/RESULTS.md by hand, with the machine and date.
"""

import argparse
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = f"creditdesk_bench_{os.getpid()}"
PG = ["-h", "127.0.0.1", "-U", "postgres"]
YARDSTICK = ROOT / "bench" / "yardstick.sh"


def psql(sql):
    subprocess.run(["psql", *PG, "-q", "-d", "postgres", "-c", sql], check=True)


def setup_django():
    # Here, not on import: bench/service_ab.py imports `hammer` into another checkout's process.
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["DEBUG"] = "false"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def populate(accounts):
    from django.db import connection

    from apps.accounts.models import Account
    from apps.catalog.models import CreditType, Feature

    credits = CreditType.objects.create(code="credits", name="Credits")
    Feature.objects.create(code="api_call", name="API call", credit_type=credits)
    Account.objects.bulk_create(
        [Account(external_id=f"bench-{i}") for i in range(accounts)], batch_size=5000
    )
    big = "1000000000"
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO wallets_wallet (account_id, credit_type_id, balance, held, debt, "
            "created_at, updated_at) SELECT id, %s, %s, 0, 0, now(), now() FROM accounts_account",
            [credits.pk, big],
        )
        cursor.execute(
            "INSERT INTO wallets_creditgrant (account_id, wallet_id, source, amount, remaining, "
            "debt_settled, priority, effective_at, unit_price, basis_amount, currency, reason, "
            "created_at) SELECT account_id, id, 'promo', %s, %s, 0, 100, now(), 0, 0, 'USD', '', "
            "now() "
            "FROM wallets_wallet",
            [big, big],
        )
        cursor.execute(
            "INSERT INTO wallets_ledgerentry (account_id, wallet_id, kind, amount, balance_after, "
            "held_change, grant_id, reason, created_at) SELECT account_id, wallet_id, 'grant', "
            "amount, amount, 0, id, '', now() FROM wallets_creditgrant"
        )
        # One free usage event per account, as a live system has: PostgreSQL plans each
        # foreign-key check once per connection, and a plan made while usage events were none
        # would scan the whole table for every ledger entry once it has grown.
        cursor.execute(
            "INSERT INTO usage_usageevent (account_id, feature_id, credit_type_id, quantity, "
            "credits_per_unit, credits, balance_after, available_after, fingerprint, metadata, "
            "occurred_at, created_at) SELECT w.account_id, f.id, w.credit_type_id, 1, 0, 0, "
            "w.balance, w.balance, '', '{}', now(), now() FROM wallets_wallet w, "
            "catalog_feature f"
        )
        cursor.execute("VACUUM ANALYZE")
    return list(Account.objects.order_by("pk"))


def hammer(call, *, threads, seconds):
    from django.db import connections

    stop = time.monotonic() + seconds
    counts = [0] * threads
    errors = []

    def worker(i):
        rng = random.Random(i)
        try:
            while time.monotonic() < stop:
                call(rng)
                counts[i] += 1
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return sum(counts) / (time.monotonic() - started)


def yardstick(threads, seconds, accounts):
    out = subprocess.run(
        ["bash", str(YARDSTICK), str(threads), str(seconds), str(accounts)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return float(out.split("yardstick:")[1].split("tps")[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--accounts", type=int, default=10000)
    args = parser.parse_args()

    psql(f"CREATE DATABASE {DB}")
    try:
        setup_django()
        from apps.usage.services import ConsumeRequest, consume, consume_batch

        accounts = populate(args.accounts)
        hot = accounts[0]

        spread = hammer(
            lambda rng: consume(account=rng.choice(accounts), feature="api_call"),
            threads=args.threads, seconds=args.seconds,
        )  # fmt: skip
        one = hammer(
            lambda rng: consume(account=hot, feature="api_call"),
            threads=args.threads, seconds=args.seconds,
        )  # fmt: skip
        batch_account = accounts[1]
        requests = [ConsumeRequest.build(account=batch_account, feature="api_call")] * 500
        started, batches = time.monotonic(), 0
        while time.monotonic() - started < args.seconds / 3:
            consume_batch(requests=requests)
            batches += 1
        batch_rate = batches * 500 / (time.monotonic() - started)

        from django.core.management import call_command

        call_command("verify_ledger", verbosity=0)
        from django.db import connections

        connections.close_all()
        y_spread = yardstick(args.threads, args.seconds, args.accounts)
        y_one = yardstick(args.threads, args.seconds, 1)
    finally:
        from django.db import connections

        connections.close_all()
        psql(f"DROP DATABASE IF EXISTS {DB}")

    print(
        f"consume, {args.accounts} accounts: {spread:8.0f}/s  yardstick {y_spread:6.0f} tps  "
        f"ratio {spread / y_spread:.2f}"
    )
    print(
        f"consume, one hot account:  {one:8.0f}/s  yardstick {y_one:6.0f} tps  "
        f"ratio {one / y_one:.2f}"
    )
    print(f"consume_batch, 500 events: {batch_rate:8.0f} events/s")


if __name__ == "__main__":
    main()
