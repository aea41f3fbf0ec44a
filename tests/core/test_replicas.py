"""Read replicas (apps/core/replicas.py): history reads may come from a streaming replica
within the lag allowed; every decision about money, and every write, stays on the primary.
Against a real primary and its real streaming replica, both started here (initdb,
pg_basebackup, two postmasters on spare ports), the schema copied from the test database."""

import json
import os
import subprocess
import sys
import tempfile

import pytest
from django.conf import settings
from django.db import connection

from tests.clusters import BIN, as_postgres, cluster_root, copy_schema
from tests.processes import spare_port

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture(scope="module")
def primary_and_replica(django_db_setup, django_db_blocker):
    """A primary holding a copy of the test database's schema and its streaming replica."""
    with cluster_root() as new_cluster:
        primary, replica = new_cluster("primary"), new_cluster("replica")
        primary.initdb("wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n")
        with (primary.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        primary.start()
        with django_db_blocker.unblock():
            test_db = connection.settings_dict["NAME"]
        source = f"postgres://postgres@127.0.0.1:{connection.settings_dict['PORT'] or 5432}"
        copy_schema(source_url=f"{source}/{test_db}", cluster=primary)
        as_postgres([f"{BIN}/pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port),
                     "-U", "postgres", "-D", str(replica.data), "-R", "-X", "stream",
                     "-c", "fast"])  # fmt: skip
        with (replica.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {replica.port}\n")
        replica.start()
        yield primary, replica


def test_history_reads_come_from_the_replica_and_money_is_decided_on_the_primary(
    primary_and_replica,
):
    primary, replica = primary_and_replica
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "DATABASE_URL": primary.url("creditdesk"),
           "DATABASE_REPLICA_URLS": replica.url("creditdesk"),
           "DATABASE_REPLICA_MAX_LAG": "60", "DATABASE_REPLICA_CHECK_INTERVAL": "0.3"}  # fmt: skip
    # Its log to a file: a pipe nobody reads would fill and stop it.
    errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed below)
    scenario = subprocess.Popen(
        [sys.executable, "-m", "tests.core.replica_scenario"],
        cwd=settings.BASE_DIR, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=errors, text=True,
    )  # fmt: skip
    try:
        first = scenario.stdout.readline()
        assert first, errors.seek(0) or errors.read()
        seen = json.loads(first)
        replica.stop()
        scenario.stdin.write("go on\n")
        scenario.stdin.flush()
        last = scenario.stdout.readline()
        assert last, errors.seek(0) or errors.read()
        seen.update(json.loads(last))
    finally:
        scenario.kill()
        scenario.wait()
        errors.close()
    assert seen == {
        "caught up: history reads go to": "replica_1",
        "caught up: money reads go to": "default",
        "caught up: history reads inside a transaction go to": "default",
        # Replay paused: the replica still says 10 credits; the primary decides.
        "paused: consume 6 of 10": 201,
        "paused: consume 6 more": 402,
        "paused: check 5": [False, "4.000000"],
        "paused: balance": ["4.000000"],
        "paused, within the lag allowed: usage listed": 0,
        "paused, within the lag allowed: ledger entries listed": 1,
        "paused, within the lag allowed: usage events on the admin's list": 0,
        "paused, within the lag allowed: usage events exported": 0,
        "paused past the lag allowed: history reads go to": "default",
        "paused past the lag allowed: usage listed": 1,
        "paused past the lag allowed: usage events on the admin's list": 1,
        "paused past the lag allowed: usage events exported": 1,
        "resumed: history reads go to": "replica_1",
        "resumed: usage listed": 1,
        "replica stopped: history reads go to": "default",
        "replica stopped: usage listed": 1,
    }


UNREACHABLE = """
import logging, threading, time, django
django.setup()
from apps.core import replicas
tries = []
logging.getLogger("apps.core.replicas").addFilter(lambda record: tries.append(1))
answers = []
def reader():
    for _ in range(20):  # 0.4 s: 40 check intervals, past which only the retry holds it off
        answers.append(replicas.usable_replica())
        time.sleep(0.02)
threads = [threading.Thread(target=reader) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print(len(tries), len(answers), set(answers))
"""


def test_an_unreachable_replica_is_tried_once_per_process_until_its_retry():
    """Four threads read 80 times over 0.4 s, a check due every 10 ms: one connection attempt
    in all, not one per thread per check (a host that does not answer costs the connect
    timeout each time); the next is 30 s away."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "DATABASE_REPLICA_URLS": f"postgres://postgres@127.0.0.1:{spare_port()}/none",
           "DATABASE_REPLICA_CHECK_INTERVAL": "0.01"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", UNREACHABLE], cwd=settings.BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "1 80 {None}"
