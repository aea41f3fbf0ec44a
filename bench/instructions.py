"""Benchmark: CPU instructions per API request in the web process, counted, not timed.

    .venv/bin/python bench/instructions.py [--requests 300] [--runs 3] [--shape consume]

Time per request drifts with whatever else this shared machine runs (the same run gave
0.74 ms and 0.31 ms of web CPU for the bare floor on two days); the number of instructions
the web process executes per request does not. Valgrind (cachegrind, no cache simulation)
counts the user-space instructions of a process that serves N requests through the WSGI
application (config.wsgi: the fast lane in front of Django; production settings, PostgreSQL,
Redis) and of one that serves none; the difference ÷ N is the cost of one request. The same
for bench/wsgi_floor.py (the same Redis command and database call, no framework). Kernel
time (the sockets) is not counted: it is the same for both. Timing-dependent paths (how
often psycopg polls before a result is there) leave a few per cent between runs; the median
of `--runs` is printed. Needs valgrind (Debian's package). Not a test: results go in
bench/RESULTS.md by hand, with the machine and the date.
"""

import argparse
import gc
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from request_costs import app_env

ROOT = Path(__file__).resolve().parent.parent
PG = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-d", "postgres", "-c"]
DB = "creditdesk_instructions"
SHAPES = {  # name -> (application, path)
    "consume": ("lane", "/api/v1/consume"),
    "check": ("lane", "/api/v1/check"),
    "floor consume": ("floor", "/api/v1/consume"),
}


def environment():
    """request_costs.app_env's (production settings, connections kept: under valgrind 300
    requests take a minute, and a reconnect within some runs and not others would show),
    for the in-process Host header, with the floor's DSN."""
    return {
        **app_env(DB), "ALLOWED_HOSTS": "testserver",
        "FLOOR_DSN": f"postgresql://postgres@127.0.0.1:5432/{DB}",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13"),
        "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}",
    }  # fmt: skip


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--shape",
        action="append",
        choices=SHAPES,
        help="only this shape (repeatable); all of them by default",
    )
    options = parser.parse_args()
    env = environment()
    subprocess.run([*PG, f"DROP DATABASE IF EXISTS {DB}"], check=True)
    subprocess.run([*PG, f"CREATE DATABASE {DB}"], check=True)
    try:
        key = subprocess.run([sys.executable, __file__, "--populate"], env=env, check=True,
                             capture_output=True, text=True).stdout.split()[-1]  # fmt: skip
        env["BENCH_KEY"] = key
        for shape in options.shape or SHAPES:
            base = count(env, shape, 0)
            per_request = sorted(
                (count(env, shape, options.requests) - base) / options.requests
                for _ in range(options.runs)
            )
            median = per_request[len(per_request) // 2]
            runs = ", ".join(f"{n:,.0f}" for n in per_request)
            print(f"{shape}: {median:,.0f} instructions per request ({runs})", flush=True)
    finally:
        subprocess.run([*PG, f"DROP DATABASE IF EXISTS {DB}"], check=True)


def count(env, shape, requests):
    """User-space instructions of a process that serves `requests` requests of `shape`."""
    run = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, __file__, "--serve", shape, str(requests)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(re.search(r"I\s+refs:\s+([\d,]+)", run.stderr)[1].replace(",", ""))


def populate():
    import django

    django.setup()
    from consume_service import populate as fill
    from django.core.management import call_command

    from apps.accounts.services import create_api_key

    call_command("migrate", verbosity=0)
    fill(1000)
    _, key = create_api_key(name="instructions", scopes=["usage:write"],
                            rate_limit_per_minute=10**9)  # fmt: skip
    print(key)


def serve(shape, requests):
    which, path = SHAPES[shape]
    if which == "lane":
        from config.wsgi import application
    else:
        from wsgi_floor import application
    body = json.dumps({"account": "bench-5", "feature": "api_call"}).encode()
    statuses = []
    gc.collect()
    gc.freeze()  # a full collection of the start-up heap would land in one run, not the other
    for _ in range(20 + requests):  # the first ones connect and fill caches
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "",
            "SERVER_NAME": "testserver", "SERVER_PORT": "80", "HTTP_HOST": "testserver",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "HTTP_AUTHORIZATION": f"Bearer {os.environ['BENCH_KEY']}",
            "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        }  # fmt: skip
        answer = application(environ, lambda status, headers: statuses.append(status))
        b"".join(answer)
        getattr(answer, "close", lambda: None)()
    assert {status[:3] for status in statuses} <= {"200", "201"}, set(statuses)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--populate"]:
        populate()
    elif sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        main()
