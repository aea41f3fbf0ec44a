"""Benchmark: the consume functions of two releases, side by side in one database.

    .venv/bin/python bench/function_ab.py --old-checkout ../old [--rounds 10] [--accounts 2000]

`--old-checkout` is a checkout of the earlier release (e.g. `git worktree add ../old <commit>`
with this .venv linked in). Creates (and drops) its own database, migrates it with the old
checkout, then with this one, so both releases' functions are installed over the same rows;
then, alternating old and new each round, times one 500-event batch and 300 single consumes
on one connection, server round trips included. Same data, same connection, same minute: the
fairest A/B this shared machine allows. Prints medians. Not a test: results go in
bench/RESULTS.md by hand.
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = f"creditdesk_ab_{os.getpid()}"
URL = f"postgres://postgres@127.0.0.1:5432/{DB}"
PG = ["-h", "127.0.0.1", "-U", "postgres"]
FUNCTIONS = {  # release: (single, batch)
    "old": ("creditdesk_consume", "creditdesk_consume_batch"),
    "new": ("creditdesk_consume_v2", "creditdesk_consume_batch_v2"),
}


def psql(sql):
    subprocess.run(["psql", *PG, "-q", "-d", "postgres", "-c", sql], check=True)


def migrate(checkout):
    env = {**os.environ, "DATABASE_URL": URL, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=checkout, env=env,
                   check=True, stderr=subprocess.DEVNULL)  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-checkout", required=True, type=Path)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--accounts", type=int, default=2000)
    args = parser.parse_args()
    psql(f"CREATE DATABASE {DB}")
    try:
        migrate(args.old_checkout.resolve())
        migrate(ROOT)
        run(args)
    finally:
        from django.db import connections

        connections.close_all()
        psql(f"DROP DATABASE IF EXISTS {DB}")


def run(args):
    os.environ.update(DATABASE_URL=URL, DJANGO_SETTINGS_MODULE="config.settings.local",
                      DEBUG="false")  # fmt: skip
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    import django

    django.setup()
    from consume_service import populate
    from django.db import connection
    from django.utils import timezone

    ids = [a.pk for a in populate(args.accounts)]
    rng = random.Random(1)

    def batch(release, n=500):
        values = [[rng.choice(ids)] * n, ["api_call"] * n, [1] * n, [None] * n, [""] * n,
                  ["{}"] * n, [None] * n, timezone.now()]  # fmt: skip
        sql = (
            f"SELECT count(*) FROM {FUNCTIONS[release][1]}(%s::bigint[], %s::text[], "
            "%s::numeric[], %s::text[], %s::text[], %s::jsonb[], %s::timestamptz[], %s)"
        )
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(sql, values)
            assert cursor.fetchone()[0] == n
            return (time.perf_counter() - started) / n

    def single(release, k=300):
        sql = f"SELECT outcome FROM {FUNCTIONS[release][0]}(%s, %s, %s, %s, %s, %s::jsonb, %s, %s)"
        with connection.cursor() as cursor:
            started = time.perf_counter()
            for _ in range(k):
                cursor.execute(sql, [rng.choice(ids), "api_call", 1, None, "", "{}", None,
                                     timezone.now()])  # fmt: skip
                assert cursor.fetchone()[0] == "created"
            return (time.perf_counter() - started) / k

    timings = {(shape, release): [] for shape in (batch, single) for release in FUNCTIONS}
    for release in FUNCTIONS:  # warm up: plans, caches
        batch(release), single(release, 50)
    for round_ in range(args.rounds):
        for release in ("old", "new") if round_ % 2 else ("new", "old"):
            for shape in (batch, single):
                timings[(shape, release)].append(shape(release))
    for shape in (single, batch):
        old, new = (statistics.median(timings[(shape, r)]) for r in ("old", "new"))
        label = "single consume" if shape is single else "batch of 500, per event"
        print(f"{label}: old {1 / old:,.0f}/s  new {1 / new:,.0f}/s  new/old {old / new:.2f}")


if __name__ == "__main__":
    main()
