"""PostgreSQL restarted (`pg_ctl restart -m fast`) under a consume load: clients see 201 or
503 `service_unavailable` with Retry-After, never a 2xx that did not commit and never a 500;
service resumes by itself; a retry with the same idempotency key charges once; the ledger and
revenue verify clean. Real processes: the production server (granian) on its own cluster,
started here, and Redis."""

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import NamedTuple

import pytest
from django.conf import settings
from django.db import connection

from tests.clusters import cluster_root, copy_schema
from tests.processes import spare_port, wait_until_listening

pytestmark = [pytest.mark.postgres, pytest.mark.reliability, pytest.mark.django_db]
CLIENTS = 6
BEFORE, AFTER = 1.5, 3.0  # seconds of load before the restart, and after it is back


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory):
    """`(cluster, base url, API key, environment)`: CreditDesk under granian on a cluster of
    its own holding the test database's schema, one account with a million credits."""
    with django_db_blocker.unblock():
        test_db = connection.settings_dict["NAME"]
    source = f"postgres://postgres@127.0.0.1:{connection.settings_dict['PORT'] or 5432}"
    with cluster_root() as new_cluster:
        cluster = new_cluster("restarted")
        cluster.initdb()
        cluster.start()
        url = copy_schema(source_url=f"{source}/{test_db}", cluster=cluster)
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.production",
               "SECRET_KEY": "reliability-test-only", "ALLOWED_HOSTS": "127.0.0.1",
               "SECURE_SSL_REDIRECT": "false", "LOG_LEVEL": "ERROR",
               "DATABASE_URL": url}  # fmt: skip
        raw_key = outside(env, "seed").strip()
        port, log = spare_port(), tmp_path_factory.mktemp("server") / "granian.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [f"{sys.prefix}/bin/granian", "--interface", "wsgi", "--host", "127.0.0.1",
                 "--port", str(port), "--workers", "1", "--blocking-threads", "4", "--no-ws",
                 "config.wsgi:application"],
                cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_until_listening(port, process, log)
            yield cluster, port, raw_key, env
        finally:
            process.terminate()
            process.wait(timeout=20)


def outside(env, command):
    done = subprocess.run([sys.executable, "-m", "tests.reliability.outside", command],
                          cwd=settings.BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


class Answer(NamedTuple):
    tag: str
    keyed: bool  # sent with an idempotency key (its tag)
    status: int | None  # None: no answer
    code: str | None
    retry_after: str | None
    replayed: bool
    at: float  # when it came


class Load:
    """Client threads consuming one credit per request, each request tagged (metadata) so the
    ledger can say which were charged; every other request carries an idempotency key."""

    def __init__(self, port, raw_key):
        self.port, self.raw_key = port, raw_key
        self.answers = []
        self.numbers = iter(range(10**9))
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self):
        threads = [threading.Thread(target=self.client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        return threads

    def client(self):
        conn = None
        while not self.stopping.is_set():
            with self.lock:
                tag = f"r{next(self.numbers)}"
            keyed = int(tag[1:]) % 2 == 0
            conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            answer = consume(conn, self.raw_key, tag, keyed)
            if answer is None:  # the server closed the connection: no answer, tried anew
                conn.close()
                conn = None
            answer = Answer(tag, keyed, *(answer or (None, None, None, False)), time.monotonic())
            with self.lock:
                self.answers.append(answer)
        if conn is not None:
            conn.close()


def consume(conn, raw_key, tag, keyed):
    """`(status, error code, Retry-After, replayed)` or None (no answer)."""
    headers = {"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"}
    if keyed:
        headers["Idempotency-Key"] = tag
    body = json.dumps({"account": "acme", "feature": "api_call", "metadata": {"tag": tag}})
    try:
        conn.request("POST", "/api/v1/consume", body, headers)
        response = conn.getresponse()
        payload = json.loads(response.read())
    except (OSError, http.client.HTTPException):
        return None
    code = payload.get("error", {}).get("code") if response.status >= 400 else None
    return (response.status, code, response.getheader("Retry-After"),
            response.getheader("Idempotent-Replayed") == "true")  # fmt: skip


def test_a_database_restart_under_load_loses_nothing_and_charges_nothing_twice(server):
    cluster, port, raw_key, env = server
    load = Load(port, raw_key)
    threads = load.run()
    time.sleep(BEFORE)
    restarted_at = time.monotonic()
    cluster.restart("fast")
    back_at = time.monotonic()
    time.sleep(AFTER)
    load.stopping.set()
    for thread in threads:
        thread.join(timeout=60)

    answers = load.answers
    seen = Counter((a.status, a.code) for a in answers)
    # Clients saw a charge or a clean 503 that says when to come back: no 500, no silence.
    assert set(seen) <= {(201, None), (503, "service_unavailable")}, seen
    assert {a.retry_after for a in answers if a.status == 503} == {"1"}, (
        "the restart went unnoticed"
    )
    # Back by itself: every request answered a second after the server was up again charged.
    late = {a.status for a in answers if a.at > back_at + 1}
    assert late == {201}

    # A retry with the same idempotency key charges once: 201 (first charge) or a replay.
    failed_keyed = [a.tag for a in answers if a.keyed and a.status != 201]
    retried = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for tag in failed_keyed:
        status, _, _, replayed = consume(conn, raw_key, tag, keyed=True)
        retried["replayed" if replayed else status] += 1
    conn.close()
    assert set(retried) <= {201, "replayed"}, retried

    ledger = json.loads(outside(env, "verify"))
    charged = Counter(ledger["tags"])
    assert max(charged.values()) == 1, "a request was charged twice"
    answered_201 = {a.tag for a in answers if a.status == 201}
    unkeyed_failed = {a.tag for a in answers if not a.keyed and a.status != 201}
    assert set(charged) == answered_201 | set(failed_keyed)
    assert not set(charged) & unkeyed_failed, "a request that got an error was charged"
    assert ledger["ledger_violations"] == [] and ledger["revenue_problems"] == []
    print(
        f"\nPostgreSQL restart: {len(answers)} requests; answers {dict(seen)}; "
        f"restart took {back_at - restarted_at:.1f} s; keyed retries {dict(retried)}; "
        f"charged {len(charged)}; ledger and revenue verify clean"
    )
