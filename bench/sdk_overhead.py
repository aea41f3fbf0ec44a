"""Benchmark: what the Python client (clients/python) costs per call on the app's side.

    .venv/bin/python bench/sdk_overhead.py [--calls 20000] [--rounds 5]

Both sides send the same consume through httpx to an in-process transport that answers a
canned 201 at once (no network, no server): a bare `httpx.Client.post` with a JSON body
and an idempotency key made by the caller, against `CreditDesk.consume` (its key, its
body, the typed answer, the retry bookkeeping). The difference is what the client adds to
each call. Rounds alternate; medians printed. Not a test: results go in bench/RESULTS.md.
"""

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients/python/src"))

from creditdesk import CreditDesk

ANSWER = json.dumps({
    "id": 1, "account": "acme", "feature": "api_call", "quantity": "1.000000",
    "credits": "1.000000", "credit_type": "credits", "balance_after": "99.000000",
    "available_after": "99.000000", "created_at": "2026-12-04T00:00:00+00:00",
}).encode()  # fmt: skip


def answer(request):
    return httpx.Response(201, content=ANSWER, headers={"Content-Type": "application/json"})


def bare(calls):
    with httpx.Client(base_url="http://cd.test", transport=httpx.MockTransport(answer),
                      headers={"Authorization": "Bearer cdk_bench"}) as client:  # fmt: skip
        started = time.perf_counter()
        for _ in range(calls):
            body = {"account": "acme", "feature": "api_call", "quantity": "1",
                    "idempotency_key": uuid.uuid4().hex}  # fmt: skip
            response = client.post("/api/v1/consume", json=body)
            response.raise_for_status()
            response.json()
        return (time.perf_counter() - started) / calls


def sdk(calls):
    with CreditDesk("cdk_bench", base_url="http://cd.test",
                    transport=httpx.MockTransport(answer)) as cd:  # fmt: skip
        started = time.perf_counter()
        for _ in range(calls):
            cd.consume(account="acme", feature="api_call", quantity=1)
        return (time.perf_counter() - started) / calls


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    bare(1000), sdk(1000)  # warm up
    times = {"bare httpx": [], "CreditDesk.consume": []}
    for _ in range(options.rounds):
        times["bare httpx"].append(bare(options.calls))
        times["CreditDesk.consume"].append(sdk(options.calls))
    medians = {name: statistics.median(values) * 1e6 for name, values in times.items()}
    for name, micros in medians.items():
        print(f"{name}: {micros:.1f} µs per call (median of {options.rounds} rounds)")
    added = medians["CreditDesk.consume"] - medians["bare httpx"]
    print(f"the client adds {added:.1f} µs per call "
          f"({medians['CreditDesk.consume'] / medians['bare httpx']:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
