"""one_snapshot (apps/core/snapshots.py): a check of several queries sees one moment."""

import threading

import pytest
from django.db import connection, connections

from apps.accounts.models import Account
from apps.core.snapshots import one_snapshot
from tests.factories import AccountFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def commit_an_account_elsewhere(external_id):
    """An account created and committed on another connection (another thread's)."""

    def create():
        try:
            AccountFactory(external_id=external_id)
        finally:
            connections.close_all()

    thread = threading.Thread(target=create)
    thread.start()
    thread.join()


def test_what_commits_between_two_queries_of_a_snapshot_is_not_seen_by_the_second():
    AccountFactory(external_id="before")
    with one_snapshot():
        first = set(Account.objects.values_list("external_id", flat=True))
        commit_an_account_elsewhere("meanwhile")
        second = set(Account.objects.values_list("external_id", flat=True))
    assert first == second == {"before"}
    assert Account.objects.filter(external_id="meanwhile").exists()  # committed all the same


def test_a_snapshot_writes_nothing():
    with pytest.raises(Exception, match="read-only transaction"), one_snapshot():
        AccountFactory(external_id="refused")
    assert not connection.in_atomic_block
