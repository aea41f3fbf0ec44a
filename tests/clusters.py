"""PostgreSQL for tests that run processes beside their own: clusters they start for
themselves (initdb, pg_ctl) on spare ports, so that a test may stop, restart or replicate a
server without touching the machine's own (the replica test, the reliability suite); the test
database's URL for a process of the test's own; who waits on a lock there."""

import os
import pwd
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from glob import glob
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.processes import spare_port

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

    def stop(self, mode="immediate"):
        as_postgres([f"{BIN}/pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"])

    def restart(self, mode="fast"):
        as_postgres([f"{BIN}/pg_ctl", "-D", str(self.data), "-l", str(self.log), "-m", mode,
                     "-w", "restart"])  # fmt: skip

    @property
    def running(self):
        return (self.data / "postmaster.pid").exists()

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def initdb(self, conf=""):
        """A new cluster listening on its port (and a socket in its own directory)."""
        as_postgres([f"{BIN}/initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust"])
        with (self.data / "postgresql.conf").open("a") as settings:
            settings.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                           f"unix_socket_directories = '{self.data.parent}'\nfsync = off\n"
                           f"{conf}")  # fmt: skip


@contextmanager
def cluster_root():
    """A directory the postgres user owns, outside pytest's own temporary directory (which
    only root may enter), removed afterwards with every cluster still running in it."""
    if BIN is None:
        pytest.skip("needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin)")
    root = Path(tempfile.mkdtemp(prefix="creditdesk-clusters-"))
    clusters = []
    try:
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root needs a postgres user for the server tools")
            os.chown(root, owner.pw_uid, owner.pw_gid)

        def new_cluster(name):
            clusters.append(Cluster(root, name, spare_port()))
            return clusters[-1]

        yield new_cluster
    finally:
        for cluster in reversed(clusters):
            if cluster.running:
                cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def copy_schema(*, source_url, cluster, db="creditdesk"):
    """`db` on `cluster` with the schema (tables, functions, migration rows) of the database at
    `source_url`: faster than migrating afresh."""
    subprocess.run(["psql", "-q", cluster.url("postgres"), "-c", f"CREATE DATABASE {db}"],
                   check=True, capture_output=True)  # fmt: skip
    schema = subprocess.run(["pg_dump", "--no-owner", source_url], check=True,
                            capture_output=True, text=True).stdout  # fmt: skip
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", cluster.url(db)], input=schema,
                   check=True, capture_output=True, text=True)  # fmt: skip
    return cluster.url(db)


def database_url():
    """The test database's URL, for a process of the test's own."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def lock_waiters(url, *, query_like="%"):
    """How many sessions of the database at `url` wait on a lock, running a statement LIKE
    `query_like`: a process a test holds at a gate has reached it."""
    with psycopg.connect(url, autocommit=True) as probe:
        return probe.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND query LIKE %s",
            [query_like],
        ).fetchone()[0]
