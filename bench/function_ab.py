"""Benchmark: the consume functions of two releases, side by side, database side only.

    .venv/bin/python bench/function_ab.py --old-checkout ../old [--rounds 10] [--accounts 2000]

`--old-checkout` is a checkout of the earlier release (e.g. `git worktree add ../old <commit>`
with this .venv linked in). Creates (and drops) one database per release, each migrated and
filled (bench/consume_service.populate: the same accounts, ids and grants) by its own
checkout, so each release's functions run over its own schema even where both releases give a
function the same name. Then, alternating old and new each round, times one 500-event batch
and 300 single consumes on one connection per database, server round trips included. Same
rows, same minute, no Python service code: what the SQL costs. Prints medians. Not a test:
results go in bench/RESULTS.md by hand.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PG = ["-h", "127.0.0.1", "-U", "postgres"]
SINGLE = "SELECT outcome FROM creditdesk_consume_v2(%s, %s, %s, %s, %s, %s::jsonb, %s, %s)"
BATCH = (
    "SELECT count(*) FROM creditdesk_consume_batch_v2(%s::bigint[], %s::text[], "
    "%s::numeric[], %s::text[], %s::text[], %s::jsonb[], %s::timestamptz[], %s)"
)
FILL = (
    "import django; django.setup(); import sys; sys.path.insert(0, 'bench'); "
    "from consume_service import populate; import json; "
    "print(json.dumps([a.pk for a in populate({accounts})]))"
)


def psql(sql):
    subprocess.run(["psql", *PG, "-q", "-d", "postgres", "-c", sql], check=True)


def prepare(checkout, name, accounts):
    """A database migrated and filled by `checkout`; the account ids."""
    psql(f"CREATE DATABASE {name}")
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
           "DJANGO_SETTINGS_MODULE": "config.settings.local", "DEBUG": "false"}  # fmt: skip
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=checkout, env=env,
                   check=True, stderr=subprocess.DEVNULL)  # fmt: skip
    filled = subprocess.run([sys.executable, "-c", FILL.format(accounts=accounts)], cwd=checkout,
                            env=env, check=True, capture_output=True, text=True)  # fmt: skip
    return json.loads(filled.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-checkout", required=True, type=Path)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--accounts", type=int, default=2000)
    args = parser.parse_args()
    names = {release: f"creditdesk_ab_{release}_{os.getpid()}" for release in ("old", "new")}
    checkouts = {"old": args.old_checkout.resolve(), "new": ROOT}
    try:
        ids = {r: prepare(checkouts[r], names[r], args.accounts) for r in names}
        assert ids["old"] == ids["new"], "the two databases hold different accounts"
        connections = {
            r: psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{names[r]}", autocommit=True)
            for r in names
        }
        try:
            run(args, connections, ids["new"])
        finally:
            for connection in connections.values():
                connection.close()
    finally:
        for name in names.values():
            psql(f"DROP DATABASE IF EXISTS {name}")


def run(args, connections, ids):
    rng = random.Random(1)

    def batch(release, n=500):
        values = [[rng.choice(ids)] * n, ["api_call"] * n, [1] * n, [None] * n, [""] * n,
                  ["{}"] * n, [None] * n, datetime.now(UTC)]  # fmt: skip
        with connections[release].cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(BATCH, values)
            assert cursor.fetchone()[0] == n
            return (time.perf_counter() - started) / n

    def single(release, k=300):
        with connections[release].cursor() as cursor:
            started = time.perf_counter()
            for _ in range(k):
                cursor.execute(SINGLE, [rng.choice(ids), "api_call", 1, None, "", "{}", None,
                                        datetime.now(UTC)])  # fmt: skip
                assert cursor.fetchone()[0] == "created"
            return (time.perf_counter() - started) / k

    timings = {(shape, release): [] for shape in (batch, single) for release in connections}
    for release in connections:  # warm up: plans, caches
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
