"""Benchmark: what one consume and one check cost on each side, beside the yardstick.

    .venv/bin/python bench/request_costs.py [--seconds 15] [--connections 16] [--server NAME]

The API under a server (production settings; gunicorn gthread 8 x 2 by default, or another of
SERVERS) on PostgreSQL and Redis, loaded by wrk; for each
shape, what the run cost divided by the requests it answered:

- web CPU: the gunicorn processes' user + system CPU time (/proc), ms per request;
- database CPU: every PostgreSQL process's CPU time (/proc; the bench runs alone);
- database: `pg_stat_database.active_time` (time the backends spent executing statements)
  and the transactions committed, per request. pg_stat_statements would split the time by
  statement but must be preloaded (a restart of the server); active_time is always there;
- Redis: commands processed (`INFO stats`), per request;

and the yardstick (bench/yardstick.sh: pgbench, the fewest writes of a durable charge) in
the same run, its database time per transaction read the same way. Not a test: results go in
bench/RESULTS.md by hand, with the machine and the date.
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAq", "-c"]
TICKS = os.sysconf("SC_CLK_TCK")
REDIS_DB = 13
PYTHON = str(ROOT / ".venv/bin/python")


def cpu_seconds(wanted):
    """User + system CPU of the processes `wanted(pid, ppid, name)` picks (/proc)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, tail = stat.read_text().rsplit(")", 1)
        except (OSError, ValueError):
            continue
        fields = tail.split()
        if wanted(int(stat.parent.name), int(fields[1]), head.split("(", 1)[-1]):
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def web_cpu_seconds(root_pid):
    """gunicorn's master and its workers."""
    return cpu_seconds(lambda pid, ppid, name: root_pid in (pid, ppid))


def postgres_cpu_seconds():
    """Every PostgreSQL process on the machine (the bench runs alone)."""
    return cpu_seconds(lambda pid, ppid, name: name == "postgres")


def database(name_pattern):
    """(active ms, commits) of the databases whose names match a LIKE pattern."""
    row = subprocess.run(
        [*PG, "SELECT coalesce(sum(active_time), 0), coalesce(sum(xact_commit), 0) "
              f"FROM pg_stat_database WHERE datname LIKE '{name_pattern}'"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    active, commits = row.split("|")
    return float(active), int(commits)


def redis_commands():
    info = subprocess.run(["redis-cli", "-n", str(REDIS_DB), "info", "stats"],
                          check=True, capture_output=True, text=True).stdout  # fmt: skip
    return int(re.search(r"total_commands_processed:(\d+)", info).group(1))


def wrk(port, seconds, connections, key, lua="consume.lua", **env):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
         str(ROOT / "bench/wrk" / lua), f"http://127.0.0.1:{port}"],
        env={**os.environ, "KEY": key, **env}, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return requests, p99, int(non2xx.group(1)) if non2xx else 0


# How to serve a WSGI application: gunicorn with threads or with one request per process,
# granian's WSGI interface (a Rust HTTP server; Python runs on its blocking threads).
SERVERS = {
    "gunicorn gthread 8x2": ["{bin}/gunicorn", "{app}", "-b", "127.0.0.1:{port}", "-k", "gthread",
                             "--workers", "8", "--threads", "2", "--log-level", "warning"],
    "gunicorn sync 16": ["{bin}/gunicorn", "{app}", "-b", "127.0.0.1:{port}", "-k", "sync",
                         "--workers", "16", "--log-level", "warning"],
    "granian 2x8": ["{bin}/granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port",
                    "{port}", "--workers", "2", "--blocking-threads", "8", "--log-level",
                    "warning", "--no-ws", "{app}"],
    "granian 4x4": ["{bin}/granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port",
                    "{port}", "--workers", "4", "--blocking-threads", "4", "--log-level",
                    "warning", "--no-ws", "{app}"],
}  # fmt: skip
CREDITDESK = "config.wsgi:application"


def serve(server, app, port, env, cwd=ROOT):
    """Start `app` under `server` (a SERVERS name) and wait until it accepts connections."""
    command = [part.format(bin=ROOT / ".venv/bin", app=app, port=port) for part in SERVERS[server]]
    process = subprocess.Popen(command, cwd=cwd, env=env)
    for _ in range(150):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{server} did not start")


def stop(process):
    process.terminate()
    process.wait()


def app_env(db):
    """The environment CreditDesk runs in for a bench: production settings; connections kept
    for the whole bench (a backend that exits takes its CPU time out of /proc with it)."""
    return {
        **os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "CONN_MAX_AGE": "3600",
        "SECRET_KEY": "bench-only-not-secret", "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false", "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}",
        "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
    }  # fmt: skip


def bench_database():
    """A database filled as bench/http_consume.sh's: `(name, raw API key)`."""
    if not shutil.which("wrk"):  # as bench/http_consume.sh does
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    db = f"creditdesk_costs_{os.getpid()}"
    created = subprocess.run([PYTHON, "bench/http_setup.py", "create", db], cwd=ROOT,
                             check=True, capture_output=True, text=True)  # fmt: skip
    return db, created.stdout.strip().splitlines()[-1]


def drop_database(db):
    subprocess.run([PYTHON, "bench/http_setup.py", "drop", db], cwd=ROOT, check=True)


def measure(name, server, db, run):
    """Run the load `run`; print what it cost per request. Returns (req/s, p99, web CPU ms
    per request)."""
    cpu0, (active0, commits0), redis0 = (
        web_cpu_seconds(server.pid),
        database(db),
        redis_commands(),
    )
    pg0 = postgres_cpu_seconds()
    started = time.monotonic()
    requests, p99, non2xx = run()
    elapsed = time.monotonic() - started
    pg1 = postgres_cpu_seconds()
    time.sleep(1.5)  # the backends report their statistics within a second of going idle
    cpu1, (active1, commits1), redis1 = (
        web_cpu_seconds(server.pid),
        database(db),
        redis_commands(),
    )
    print(
        f"{name}: {requests / elapsed:,.0f} req/s, p99 {p99}, non-2xx {non2xx}; per request: "
        f"web CPU {(cpu1 - cpu0) * 1000 / requests:.2f} ms, database CPU "
        f"{(pg1 - pg0) * 1000 / requests:.2f} ms, database time "
        f"{(active1 - active0) / requests:.3f} ms in {(commits1 - commits0) / requests:.2f} "
        f"transactions, Redis {(redis1 - redis0) / requests:.2f} commands",
        flush=True,
    )
    return requests / elapsed, p99, (cpu1 - cpu0) * 1000 / requests


def yardstick(connections, seconds, accounts):
    """bench/yardstick.sh, its tps, and its database time per transaction: sampled while it
    runs (it drops its database at the end), from its first thousand commits on."""
    samples, done = [], threading.Event()

    def sample():
        while not done.is_set():
            samples.append((*database("yardstick\\_%"), postgres_cpu_seconds()))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out = subprocess.run(["bash", str(ROOT / "bench/yardstick.sh"), str(connections),
                          str(seconds), str(accounts)], check=True, capture_output=True,
                         text=True).stdout.strip()  # fmt: skip
    done.set()
    sampler.join()
    running = [s for s in samples if s[1] > samples[0][1] + 1000]  # past the setup's commits
    first, last = running[0], running[-1]
    transactions = max(1, last[1] - first[1])
    cpu, spent = (last[2] - first[2]) * 1000 / transactions, (last[0] - first[0]) / transactions
    print(f"{out}; per transaction: database CPU {cpu:.2f} ms, database time {spent:.3f} ms")
    return float(re.search(r"([\d.]+) tps", out).group(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", 8125)))
    parser.add_argument("--server", choices=SERVERS, default="gunicorn gthread 8x2")
    options = parser.parse_args()
    db, key = bench_database()
    server = serve(options.server, CREDITDESK, options.port, app_env(db))
    try:
        load = {"port": options.port, "seconds": options.seconds,
                "connections": options.connections, "key": key}  # fmt: skip
        wrk(**{**load, "seconds": 3})  # warm up: connections, caches
        measure("consume, 10,000 accounts", server, db, lambda: wrk(**load, ACCOUNTS="10000"))
        measure("consume, one hot account", server, db, lambda: wrk(**load, ACCOUNTS="1"))
        measure("check, 10,000 accounts", server, db,
                lambda: wrk(**load, ACCOUNTS="10000", ENDPOINT="/api/v1/check"))  # fmt: skip
    finally:
        stop(server)
        drop_database(db)
    yardstick(options.connections, options.seconds, 10000)
    yardstick(options.connections, options.seconds, 1)


if __name__ == "__main__":
    sys.exit(main())
