"""Benchmark: which server to run CreditDesk under, by measurement.

    .venv/bin/python bench/servers.py [--seconds 15] [--connections 16] [--server NAME ...]

For each server shape of bench/request_costs.py's SERVERS (gunicorn gthread, gunicorn sync,
granian's WSGI interface), in one run on one database: CreditDesk's consume (10,000 accounts,
production settings), then the bare-WSGI floor (bench/wsgi_floor.py: the same Redis command
and database call with no framework) under the same server; and the yardstick once at the
start and once at the end. Prints each measurement as it goes, then a table: req/s, p99, web
CPU per request, CreditDesk ÷ floor, CreditDesk ÷ yardstick. Not a test: results go in
bench/RESULTS.md by hand, with the machine and the date.
"""

import argparse
import os
import sys

from request_costs import (
    CREDITDESK,
    REDIS_DB,
    ROOT,
    SERVERS,
    app_env,
    bench_database,
    drop_database,
    measure,
    serve,
    stop,
    wrk,
    yardstick,
)

FLOOR = "wsgi_floor:application"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", 8126)))
    parser.add_argument(
        "--server",
        action="append",
        choices=list(SERVERS),
        help="only this server shape (repeatable); all of them by default",
    )
    options = parser.parse_args()
    yardsticks = [yardstick(options.connections, options.seconds, 10000)]
    db, key = bench_database()
    floor_env = {**os.environ, "FLOOR_DSN": f"postgresql://postgres@127.0.0.1:5432/{db}",
                 "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}"}  # fmt: skip
    load = {"port": options.port, "seconds": options.seconds,
            "connections": options.connections, "key": key}  # fmt: skip
    rows = []
    try:
        for name in options.server or SERVERS:
            figures = []
            for app, env, cwd in ((CREDITDESK, app_env(db), ROOT),
                                  (FLOOR, floor_env, ROOT / "bench")):  # fmt: skip
                server = serve(name, app, options.port, env, cwd=cwd)
                try:
                    wrk(**{**load, "seconds": 3})  # warm up: connections, caches
                    label = f"{name}, {'CreditDesk' if app == CREDITDESK else 'floor'}"
                    figures.append(measure(label, server, db, lambda: wrk(**load)))
                finally:
                    stop(server)
            rows.append((name, *figures))
    finally:
        drop_database(db)
    yardsticks.append(yardstick(options.connections, options.seconds, 10000))
    tps = sum(yardsticks) / len(yardsticks)
    print(f"\nyardstick (10,000 accounts): {' / '.join(f'{t:,.0f}' for t in yardsticks)} tps")
    print(
        "| server | CreditDesk req/s | p99 | web CPU | floor req/s | p99 | web CPU "
        "| ÷ floor | ÷ yardstick |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (rps, p99, cpu), (floor_rps, floor_p99, floor_cpu) in rows:
        print(
            f"| {name} | {rps:,.0f} | {p99} | {cpu:.2f} ms | {floor_rps:,.0f} | {floor_p99} "
            f"| {floor_cpu:.2f} ms | {rps / floor_rps:.2f} | {rps / tps:.2f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
