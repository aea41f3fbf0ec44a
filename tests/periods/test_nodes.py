"""Two worker nodes share one renewal run: two processes of their own (each its own settings,
one job thread each) start the same run at the same moment and renew every due subscription
exactly once between them, each doing part of it (their claims: SELECT … FOR UPDATE SKIP
LOCKED per chunk)."""

import os
import re
import subprocess
import sys
import time

import psycopg
import pytest
from django.conf import settings

from apps.accounts.models import Subscription
from apps.wallets.models import CreditGrant
from tests.clusters import database_url, lock_waiters
from tests.ledger import assert_ledger_sound

from .conftest import FEB_28, world

pytestmark = [pytest.mark.postgres,
              pytest.mark.django_db(transaction=True, serialized_rollback=True)]  # fmt: skip
ACCOUNTS = 60


def node(url):
    """A node: `manage.py run_period_jobs` for the renewal as of FEB_28, in chunks of 2, in a
    process of its own with one job thread, on this test's database."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "DATABASE_URL": url, "PERIOD_JOB_WORKERS": "1"}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_period_jobs", "--job", "renew_due_subscriptions",
         "--now", FEB_28.isoformat(), "--chunk-size", "2"],
        cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_two_nodes_split_a_renewal_run_without_overlap(calendar):
    world("node-", accounts=ACCOUNTS, calendar=calendar)
    url = database_url()
    # The gate: while this transaction holds the run table, each node's run waits to record
    # itself; released once both wait, they start together.
    nodes = []
    try:
        with psycopg.connect(url) as gate:
            gate.execute("LOCK TABLE jobs_jobrun IN SHARE MODE")
            nodes = [node(url), node(url)]
            for _ in range(300):
                if lock_waiters(url, query_like='%"jobs_jobrun"%') == 2:
                    break
                assert all(n.poll() is None for n in nodes), "a node ended before the gate"
                time.sleep(0.1)  # real time: the test's clock stands still, the nodes' not
            else:
                raise AssertionError("the nodes never reached the gate")
        outputs = [n.communicate(timeout=120) for n in nodes]
    finally:
        for n in nodes:  # a failed test leaves no node running against its database
            n.kill()
            n.wait()
    assert [n.returncode for n in nodes] == [0, 0], outputs
    renewed = [int(re.search(r"renewed=(\d+)", out).group(1)) for out, _ in outputs]
    assert sum(renewed) == ACCOUNTS and min(renewed) > 0, renewed
    periods = CreditGrant.objects.filter(account__external_id__startswith="node-",
                                         source=CreditGrant.Source.PLAN_PERIOD)  # fmt: skip
    assert periods.count() == 2 * ACCOUNTS  # the first period's and the renewal's, once each
    assert not Subscription.objects.filter(current_period_end__lte=FEB_28).exists()
    assert_ledger_sound()
