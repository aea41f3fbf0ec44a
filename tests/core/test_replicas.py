"""Read replicas (apps/core/replicas.py): history reads may come from a streaming replica
within the lag allowed; every decision about money, and every write, stays on the primary.
Against a real primary and its real streaming replica, both started here (initdb,
pg_basebackup, two postmasters on spare ports), the schema copied from the test database."""

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from glob import glob
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.processes import spare_port

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
BIN = max(glob("/usr/lib/postgresql/*/bin"), default=None)


def as_postgres(command):
    """PostgreSQL's server tools refuse to run as root: as the postgres user, if root."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"


class Cluster:
    def __init__(self, root, name, port):
        self.data, self.port, self.log = root / name, port, root / f"{name}.log"

    def start(self):
        as_postgres([f"{BIN}/pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "start"])

    def stop(self):
        as_postgres([f"{BIN}/pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"


@pytest.fixture(scope="module")
def primary_and_replica(django_db_setup, django_db_blocker):
    """A primary holding a copy of the test database's schema and its streaming replica."""
    if BIN is None:
        pytest.skip("needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin)")
    # Outside pytest's own temporary directory, which only root may enter.
    root = Path(tempfile.mkdtemp(prefix="creditdesk-replication-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root needs a postgres user for the server tools")
        os.chown(root, owner.pw_uid, owner.pw_gid)
    primary = Cluster(root, "primary", spare_port())
    replica = Cluster(root, "replica", spare_port())
    as_postgres([f"{BIN}/initdb", "-D", str(primary.data), "-U", "postgres", "-A", "trust"])
    with (primary.data / "postgresql.conf").open("a") as conf:
        conf.write(f"port = {primary.port}\nlisten_addresses = '127.0.0.1'\n"
                   f"unix_socket_directories = '{root}'\nfsync = off\nwal_level = replica\n"
                   "max_wal_senders = 4\nhot_standby = on\n")  # fmt: skip
    with (primary.data / "pg_hba.conf").open("a") as hba:
        hba.write("host replication all 127.0.0.1/32 trust\n")
    primary.start()
    try:
        with django_db_blocker.unblock():
            test_db = connection.settings_dict["NAME"]
        source = f"postgres://postgres@127.0.0.1:{connection.settings_dict['PORT'] or 5432}"
        subprocess.run(["psql", "-q", primary.url("postgres"), "-c", "CREATE DATABASE creditdesk"],
                       check=True, capture_output=True)  # fmt: skip
        schema = subprocess.run(["pg_dump", "--no-owner", f"{source}/{test_db}"], check=True,
                                capture_output=True, text=True).stdout  # fmt: skip
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", primary.url("creditdesk")],
                       input=schema, check=True, capture_output=True, text=True)  # fmt: skip
        as_postgres([f"{BIN}/pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port),
                     "-U", "postgres", "-D", str(replica.data), "-R", "-X", "stream",
                     "-c", "fast"])  # fmt: skip
        with (replica.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {replica.port}\n")
        replica.start()
        yield primary, replica
    finally:
        for cluster in (replica, primary):
            if (cluster.data / "postmaster.pid").exists():
                cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


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
