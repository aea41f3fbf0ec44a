"""Benchmark: the consume service of two releases, side by side, one thread, Python side included.

    .venv/bin/python bench/service_ab.py --old-checkout ../old [--rounds 10] [--accounts 10000]

`--old-checkout` is a checkout of the earlier release (`git worktree add ../old <commit>` with
this .venv linked in). Each release gets its own database, migrated and filled by its own
checkout (bench/function_ab.prepare), and its own worker process running its own code. The
rounds alternate between the two workers, so both see the same minute of this shared machine.
Each round, a worker calls `consume` on random accounts and reports, per consume: wall time,
this process's CPU time (the Python side: the ORM, the service, the driver; the database's
work is another process's CPU) and the SQL statements sent. Then one `cProfile` pass per
release counts the Python function calls per consume, which no noise moves, and lists where
the time goes. Prints medians. Not a test: results go in bench/RESULTS.md by hand.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-checkout", required=True, type=Path)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--accounts", type=int, default=10000)
    parser.add_argument("--consumes", type=int, default=300, help="per round, one thread")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5, help="per round, with --threads")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return work(args.worker)

    from function_ab import prepare, psql

    names = {release: f"creditdesk_sab_{release}_{os.getpid()}" for release in ("old", "new")}
    checkouts = {"old": args.old_checkout.resolve(), "new": ROOT}
    workers = {}
    try:
        ids = {r: prepare(checkouts[r], names[r], args.accounts) for r in names}
        assert ids["old"] == ids["new"], "the two databases hold different accounts"
        for release, checkout in checkouts.items():
            workers[release] = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--old-checkout", ".",
                 "--worker", names[release]],
                cwd=checkout, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
        report(args, workers)
    finally:
        for worker in workers.values():
            worker.stdin.close()
            worker.wait()
        for name in names.values():
            psql(f"DROP DATABASE IF EXISTS {name}")


def ask(worker, command):
    worker.stdin.write(json.dumps(command) + "\n")
    worker.stdin.flush()
    return json.loads(worker.stdout.readline())


def report(args, workers):
    for worker in workers.values():  # warm up: imports, plans, caches
        ask(worker, {"consumes": 100})
    rounds = {release: [] for release in workers}
    if args.threads > 1:
        command = {"threads": args.threads, "seconds": args.seconds}
    else:
        command = {"consumes": args.consumes}
    for round_ in range(args.rounds):
        for release in ("old", "new") if round_ % 2 else ("new", "old"):
            rounds[release].append(ask(workers[release], command))

    def median(release, key):
        return statistics.median(r[key] for r in rounds[release])

    if args.threads > 1:
        print(f"{args.rounds} rounds of {args.seconds:g} s, {args.threads} threads, alternating")
        for release in rounds:
            print(f"  {release}: " + " ".join(f"{r['per_s']:,.0f}" for r in rounds[release]))
        old, new = median("old", "per_s"), median("new", "per_s")
        print(f"consumes/s: old {old:,.0f}  new {new:,.0f}  new/old {new / old:.3f}")
    else:
        print(f"{args.rounds} rounds of {args.consumes} consumes, one thread, alternating")
    for key, label in (("wall_us", "wall time per consume"), ("cpu_us", "Python CPU per consume")):
        old, new = median("old", key), median("new", key)
        print(f"{label}: old {old:,.0f} µs  new {new:,.0f} µs  new/old {new / old:.3f}")
    if args.threads == 1:  # counted on the one connection
        old, new = median("old", "statements"), median("new", "statements")
        print(f"SQL statements per consume: old {old:g}  new {new:g}")
    profiles = {release: ask(worker, {"profile": args.consumes}) for release, worker in
                workers.items()}  # fmt: skip
    old, new = profiles["old"]["calls"], profiles["new"]["calls"]
    print(f"Python function calls per consume: old {old:,.0f}  new {new:,.0f}  new/old "
          f"{new / old:.3f}")  # fmt: skip
    for release, profile in profiles.items():
        print(f"\n{release}: most internal time, per consume")
        for line in profile["top"]:
            print(f"  {line}")


def work(database):
    """One release's side: runs in its checkout, answers one JSON command per line."""
    sys.path.insert(0, os.getcwd())
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{database}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["DEBUG"] = "false"
    import django

    django.setup()
    from consume_service import hammer  # the load bench/consume_service.py puts on
    from django.db import connection

    from apps.accounts.models import Account
    from apps.usage.services import consume

    accounts = list(Account.objects.order_by("pk"))
    rng = random.Random(1)
    sent = [0]

    def count(execute, sql, params, many, context):
        sent[0] += 1
        return execute(sql, params, many, context)

    def consumes(k):
        for _ in range(k):
            consume(account=rng.choice(accounts), feature="api_call")

    for line in sys.stdin:
        command = json.loads(line)
        if "profile" in command:
            answer = profile(consumes, command["profile"])
        elif "threads" in command:
            threads = command["threads"]
            wall, cpu = time.perf_counter(), time.process_time()
            per_s = hammer(
                lambda rng: consume(account=rng.choice(accounts), feature="api_call"),
                threads=threads, seconds=command["seconds"],
            )  # fmt: skip
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            answer = {"per_s": per_s, "wall_us": threads / per_s * 1e6,
                      "cpu_us": cpu / (per_s * wall) * 1e6}  # fmt: skip
        else:
            k = command["consumes"]
            sent[0] = 0
            with connection.execute_wrapper(count):
                wall, cpu = time.perf_counter(), time.process_time()
                consumes(k)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            answer = {"wall_us": wall / k * 1e6, "cpu_us": cpu / k * 1e6,
                      "statements": sent[0] / k}  # fmt: skip
        print(json.dumps(answer), flush=True)


def profile(consumes, k):
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(consumes, k)
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:12]
    top = [
        f"{tottime / k * 1e6:7.1f} µs  {calls / k:6.1f} calls  {Path(file).name}:{line}({name})"
        for (file, line, name), (_, calls, tottime, _, _) in rows
    ]
    return {"calls": stats.total_calls / k, "top": top}


if __name__ == "__main__":
    main()
