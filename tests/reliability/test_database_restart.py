"""PostgreSQL restarted (`pg_ctl restart -m fast`) under a consume load: clients see 201 or
503 `service_unavailable` with Retry-After, never a 2xx that did not commit and never a 500;
service resumes by itself; a retry with the same idempotency key charges once; the ledger and
revenue verify clean. Real processes: the production server (granian) on a PostgreSQL cluster
of the test's own, and Redis."""

import http.client
import json
import os
import time
from collections import Counter

import pytest
from django.db import connection

from tests.clusters import cluster_root, copy_schema
from tests.reliability.load import Load, call, granian, outside

pytestmark = [pytest.mark.postgres, pytest.mark.reliability, pytest.mark.django_db]
BEFORE, AFTER = 1.5, 3.0  # seconds of load before the restart, and after it is back


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory):
    """`(cluster, port, API key, environment)`: CreditDesk under granian on a cluster of its
    own holding the test database's schema, one account with a million credits."""
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
        with granian(env, tmp_path_factory.mktemp("server") / "granian.log") as port:
            yield cluster, port, raw_key, env


def test_a_database_restart_under_load_loses_nothing_and_charges_nothing_twice(server):
    cluster, port, raw_key, env = server
    with Load(port, raw_key) as load:
        time.sleep(BEFORE)
        restarted_at = time.monotonic()
        cluster.restart("fast")
        back_at = time.monotonic()
        time.sleep(AFTER)

    answers = load.answers
    seen = Counter((a.status, a.code) for a in answers)
    # Clients saw a charge or a clean 503 that says when to come back: no 500, no silence.
    assert set(seen) <= {(201, None), (503, "service_unavailable")}, seen
    assert {a.retry_after for a in answers if a.status == 503} == {"1"}, "no outage seen"
    # Back by itself: every request answered a second after the server was up again charged.
    assert {a.status for a in answers if a.at > back_at + 1} == {201}

    # A retry with the same idempotency key charges once: 201 (first charge) or a replay.
    failed_keyed = [a.tag for a in answers if a.keyed and a.status != 201]
    retried = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for tag in failed_keyed:
        status, _, _, replayed = call(conn, raw_key, "/api/v1/consume", tag, keyed=True)
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
