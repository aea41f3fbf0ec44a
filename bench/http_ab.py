"""Benchmark: the HTTP API of two releases (or of Django's path and the fast lane), side by
side, under the same server.

    .venv/bin/python bench/http_ab.py --old-checkout ../old [--rounds 3] [--seconds 10]
    .venv/bin/python bench/http_ab.py --without-lane      # API_FAST_LANE=false against true

`--old-checkout` is a checkout of the earlier release (`git worktree add ../old <commit>` with
this .venv linked in). One database, migrated and filled by this checkout (bench/http_setup.py;
an older release's database functions stay installed beside the new ones, as after a rolling
deploy); each release served by its own gunicorn (gthread 8 x 2, production settings) at the
same time. Rounds alternate between the two, consume then check (10,000 accounts, wrk 16
connections), so both see the same minute of this shared machine; each round prints req/s,
p99 and the server's CPU per request. Then the yardstick. Not a test: results go in
bench/RESULTS.md by hand.
"""

import argparse
import os
import sys
from pathlib import Path

from request_costs import (
    CREDITDESK,
    ROOT,
    app_env,
    bench_database,
    drop_database,
    measure,
    serve,
    stop,
    wrk,
    yardstick,
)

SERVER = "gunicorn gthread 8x2"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--old-checkout", type=Path)
    which.add_argument("--without-lane", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", 8141)))
    options = parser.parse_args()
    db, key = bench_database()
    if options.without_lane:
        pair = [("Django", ROOT, {"API_FAST_LANE": "false"}), ("lane", ROOT, {})]
    else:
        pair = [("old", options.old_checkout.resolve(), {}), ("new", ROOT, {})]
    servers = {}
    try:
        for n, (name, checkout, extra) in enumerate(pair):
            port = options.port + n
            env = {**app_env(db), **extra}
            servers[name] = (serve(SERVER, CREDITDESK, port, env, cwd=checkout), port)
        load = {"seconds": options.seconds, "connections": options.connections, "key": key}
        for _, port in servers.values():
            wrk(port=port, **{**load, "seconds": 3})  # warm up: connections, caches
        for n in range(1, options.rounds + 1):
            for endpoint in ("/api/v1/consume", "/api/v1/check"):
                for name, (server, port) in servers.items():
                    measure(f"round {n}, {endpoint}, {name}", server, db,
                            lambda p=port, e=endpoint: wrk(port=p, ENDPOINT=e, **load))  # fmt: skip
    finally:
        for server, _ in servers.values():
            stop(server)
        drop_database(db)
    yardstick(options.connections, options.seconds, 10000)


if __name__ == "__main__":
    sys.exit(main())
