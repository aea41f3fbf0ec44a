"""CreditDesk behind PgBouncer in transaction mode (DATABASE_POOLER=transaction): each
transaction may run on another server connection, so nothing may live on one between
transactions. The API (through the Python client, from many threads) and every period job
run in processes of their own whose DATABASE_URL is a real PgBouncer in front of this
test's database."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import creditdesk
import pytest
from django.conf import settings
from django.db import connection

from apps.accounts.services import create_api_key
from apps.jobs.models import JobRun
from apps.usage.models import UsageEvent
from tests.conftest import PGBOUNCER
from tests.ledger import D, assert_ledger_sound, priced_account, wallet_of
from tests.processes import spare_port, wait_until_listening

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.pooler,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def pgbouncer(tmp_path):
    """A PgBouncer in transaction mode with two server connections for this database (so
    that consecutive transactions of one client do land on different ones)."""
    tmp_path.chmod(0o755)  # pgbouncer drops root for postgres: it reads these files as that
    port, db = spare_port(), settings.DATABASES["default"]
    (tmp_path / "users.txt").write_text(f'"{db["USER"]}" ""\n')
    (tmp_path / "pgbouncer.ini").write_text(f"""
[databases]
* = host={db["HOST"] or "127.0.0.1"} port={db["PORT"] or 5432}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {tmp_path / "users.txt"}
pool_mode = transaction
default_pool_size = 2
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,options
""")
    log = tmp_path / "pgbouncer.log"
    command = [PGBOUNCER or "/usr/sbin/pgbouncer", str(tmp_path / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "postgres"]  # it refuses to run as root
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    wait_until_listening(port, process, log)
    yield f"postgres://{db['USER']}@127.0.0.1:{port}/{db['NAME']}"
    process.terminate()
    process.wait(timeout=10)


def pooled_env(url):
    return {**os.environ, "DATABASE_URL": url, "DATABASE_POOLER": "transaction",
            "DJANGO_SETTINGS_MODULE": "config.settings.test"}  # fmt: skip


@pytest.fixture
def pooled_server(pgbouncer, tmp_path):
    """CreditDesk's WSGI application (the fast lane in front of Django) on a threaded
    server in a process of its own, its database through the pooler."""
    port, log = spare_port(), tmp_path / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=settings.BASE_DIR, env=pooled_env(pgbouncer), stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    wait_until_listening(port, process, log)
    yield f"http://127.0.0.1:{port}", log
    process.terminate()
    process.wait(timeout=10)


def test_the_api_works_behind_pgbouncer_in_transaction_mode(pooled_server):
    url, log = pooled_server
    account, _ = priced_account(credits=100, external_id="acme")
    _, key = create_api_key(name="pooled", scopes=["usage:read", "usage:write"])
    with creditdesk.CreditDesk(key, base_url=url, retries=creditdesk.NO_RETRIES) as cd:

        def consume(_):
            try:
                return cd.consume(account="acme", feature="api_call")["id"]
            except creditdesk.InsufficientCredits:
                return None

        with cd.reserve("acme", "api_call", 1):
            pass  # held, then released
        with ThreadPoolExecutor(max_workers=8) as pool:  # each statement many times over
            charged = [i for i in pool.map(consume, range(150)) if i]
        assert len(charged) == 100
        entries = list(cd.ledger(account="acme", page_size=7))  # cursors across transactions
        assert len(entries) == 103  # the grant, the hold and its release, 100 uses
        assert cd.check(account="acme", feature="api_call")["allowed"] is False
    assert UsageEvent.objects.count() == 100 and wallet_of(account).balance == D(0)
    assert_ledger_sound()
    assert "prepared statement" not in log.read_text()


def test_every_period_job_runs_behind_pgbouncer_in_transaction_mode(pgbouncer):
    priced_account(credits=100, external_id="acme", low_balance_threshold=D(500))
    for _ in range(2):  # the second run finds no lock of the first left behind
        run = subprocess.run(
            [sys.executable, "manage.py", "run_period_jobs"], cwd=settings.BASE_DIR,
            env=pooled_env(pgbouncer), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
    runs = JobRun.objects.filter(trigger="command")
    assert runs.count() == 2 * runs.values("job").distinct().count()
    assert set(runs.values_list("status", flat=True)) == {"succeeded"}
    connection.close()
