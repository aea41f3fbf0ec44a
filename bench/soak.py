"""Soak: minutes of mixed API load with a worker and beat running every job, watching what
creeps: the web and worker processes' memory (RSS), p99 per window, 5xx; then the ledger and
revenue are verified. bench/RESULTS.md, "Soak".

    .venv/bin/python bench/soak.py [--minutes 10] [--clients 8] [--window 30]

The mix: consume 70 %, check 15 %, batch of 10 5 %, reserve then commit 5 %, reads (balance,
usage history) 3 %, a billing link then the billing page it opens 2 %, over 10,000 accounts
(bench/http_setup.py), against granian 2 x 8 under production settings, a Celery worker (2
processes) and beat with the real schedules. Creates and drops its own database; the
yardstick runs first, in the same run, for scale.
"""

import argparse
import http.client
import json
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from request_costs import app_env, bench_database, drop_database, serve, stop, yardstick  # noqa: E402

PYTHON = str(ROOT / ".venv/bin/python")
ACCOUNTS = 10000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--window", type=int, default=30, help="seconds per line")
    parser.add_argument("--port", type=int, default=8127)
    options = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {options.minutes:g} min, "
          f"{options.clients} clients")  # fmt: skip
    yardstick(16, 15, ACCOUNTS)
    db, key = bench_database()
    env = app_env(db)
    processes = {}
    try:
        processes["web"] = serve("granian 2x8", "config.wsgi:application", options.port, env)
        processes["worker"] = subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "config", "worker", "--concurrency", "2",
             "--loglevel", "WARNING"], cwd=ROOT, env=env,
        )  # fmt: skip
        processes["beat"] = subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "config", "beat", "--loglevel", "WARNING",
             "--schedule", f"/tmp/soak-beat-{db}.db"], cwd=ROOT, env=env,
        )  # fmt: skip
        soak(options, key, processes)
        for command in ("verify_ledger", "verify_revenue"):
            done = subprocess.run([PYTHON, "manage.py", command], cwd=ROOT, env=env,
                                  capture_output=True, text=True)  # fmt: skip
            print(f"{command}: exit {done.returncode}: {(done.stdout + done.stderr).strip()}")
    finally:
        for process in processes.values():
            stop(process)
        drop_database(db)


class Mix:
    """The requests, drawn by weight; each returns (label, status)."""

    def __init__(self, key):
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.kinds = [(70, self.consume), (15, self.check), (5, self.batch),
                      (5, self.reserve_commit), (3, self.read), (2, self.billing_page)]  # fmt: skip

    def pick(self, rng):
        n = rng.randrange(100)
        for weight, kind in self.kinds:
            if n < weight:
                return kind
            n -= weight
        raise AssertionError

    def post(self, conn, path, body):
        conn.request("POST", f"/api/v1/{path}", json.dumps(body), self.headers)
        response = conn.getresponse()
        return response.status, response.read()

    def consume(self, conn, account, rng):
        return "consume", self.post(conn, "consume", {"account": account, "feature": "api_call"})[0]

    def check(self, conn, account, rng):
        return "check", self.post(conn, "check", {"account": account, "feature": "api_call"})[0]

    def batch(self, conn, account, rng):
        events = [{"account": f"bench-{rng.randrange(ACCOUNTS)}", "feature": "api_call"}
                  for _ in range(10)]  # fmt: skip
        return "batch", self.post(conn, "consume/batch", {"events": events})[0]

    def reserve_commit(self, conn, account, rng):
        hold = {"account": account, "feature": "api_call", "quantity": 5, "ttl_seconds": 60}
        status, body = self.post(conn, "reservations", hold)
        if status != 201:
            return "reserve", status
        held = json.loads(body)["id"]
        return "commit", self.post(conn, f"reservations/{held}/commit", {"quantity": 3})[0]

    def billing_page(self, conn, account, rng):
        """A billing link, as an app asks for one, then the page a customer opens with it."""
        status, body = self.post(conn, f"accounts/{account}/billing-link", {})
        if status != 201:
            return "billing-link", status
        conn.request("GET", urlsplit(json.loads(body)["url"]).path)
        response = conn.getresponse()
        response.read()
        return "billing page", response.status

    def read(self, conn, account, rng):
        path = rng.choice(["balance", "usage"])
        conn.request("GET", f"/api/v1/accounts/{account}/{path}", headers=self.headers)
        response = conn.getresponse()
        response.read()
        return path, response.status


def soak(options, key, processes):
    mix, lock, stopping = Mix(key), threading.Lock(), threading.Event()
    window = {"latencies": [], "statuses": Counter()}

    def client(seed):
        rng, conn = random.Random(seed), None
        while not stopping.is_set():
            conn = conn or http.client.HTTPConnection("127.0.0.1", options.port, timeout=30)
            kind = mix.pick(rng)
            started = time.perf_counter()
            try:
                label, status = kind(conn, f"bench-{rng.randrange(ACCOUNTS)}", rng)
            except (OSError, http.client.HTTPException) as error:  # no answer: which failure
                conn.close()
                conn, label, status = None, "no answer", type(error).__name__
            took = time.perf_counter() - started
            with lock:
                window["latencies"].append(took)
                window["statuses"][(label, status)] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(options.clients)]
    for thread in threads:
        thread.start()
    lines, deadline = [], time.monotonic() + options.minutes * 60
    print("window | requests/s | p50 ms | p99 ms | 5xx/no answer | web RSS MB | worker RSS MB")
    try:
        while time.monotonic() < deadline:
            time.sleep(options.window)
            with lock:
                latencies, statuses = window["latencies"], window["statuses"]
                window["latencies"], window["statuses"] = [], Counter()
            latencies.sort()
            bad = sum(n for (_, status), n in statuses.items()
                      if isinstance(status, str) or status >= 500)  # fmt: skip
            line = (len(latencies) / options.window, 1000 * statistics.median(latencies),
                    1000 * latencies[int(len(latencies) * 0.99)], bad,
                    rss_mb(processes["web"].pid), rss_mb(processes["worker"].pid),
                    statuses)  # fmt: skip
            lines.append(line)
            print(f"{len(lines):>6} | {line[0]:>10.0f} | {line[1]:>6.1f} | {line[2]:>6.1f} | "
                  f"{line[3]:>10} | {line[4]:>10.0f} | {line[5]:>13.0f}", flush=True)  # fmt: skip
    finally:
        stopping.set()
        for thread in threads:
            thread.join()
    summarize(lines)


def summarize(lines):
    warm = lines[min(2, len(lines) - 1)]  # after a minute's warm-up
    last = lines[-1]
    statuses = sum((line[6] for line in lines), Counter())
    p99s = [line[2] for line in lines]
    print(f"answers: {dict(sorted(statuses.items(), key=str))}")
    print(
        f"RSS growth after warm-up: web {pct(warm[4], last[4])}, worker "
        f"{pct(warm[5], last[5])}; p99 per window {min(p99s):.1f}–{max(p99s):.1f} ms "
        f"(median {statistics.median(p99s):.1f}); 5xx and no answers {sum(x[3] for x in lines)}"
    )


def pct(before, after):
    return f"{before:.0f} -> {after:.0f} MB ({100 * (after - before) / before:+.1f} %)"


def rss_mb(pid):
    """The resident memory of a process and all its descendants."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total / 1024


if __name__ == "__main__":
    main()
