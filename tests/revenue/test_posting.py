"""Posting reads each ledger entry once, also from inside one long transaction that other
transactions overtake (apps/core/horizon.py)."""

from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from django.db import connection

from apps.revenue.models import RevenueLine
from apps.revenue.posting import post_revenue
from apps.revenue.verify import verify_revenue
from apps.usage.services import consume
from apps.wallets.services import grant_credits
from tests.factories import AccountFactory, CreditTypeFactory, FeatureFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]
D = Decimal


def another_transaction_commits():
    """A transaction of another connection takes an id and commits: this transaction's own
    id is then below the snapshot's horizon, where PostgreSQL no longer lists it running."""
    settings = connection.settings_dict
    with psycopg.connect(host=settings["HOST"], port=settings["PORT"] or 5432,
                         user=settings["USER"], dbname=settings["NAME"]) as other:  # fmt: skip
        other.execute("SELECT pg_current_xact_id()")
        other.commit()


def test_entries_of_the_posting_transaction_itself_are_posted_once_each(time_machine):
    time_machine.move_to(datetime(2026, 1, 10, tzinfo=UTC), tick=False)
    credit_type = CreditTypeFactory()
    FeatureFactory(code="api_call", credit_type=credit_type, credits_per_unit=D(1))
    account = AccountFactory()
    grant_credits(account=account, credit_type=credit_type, amount=D(100), source="purchase",
                  basis_amount=D("1.00"))  # fmt: skip
    another_transaction_commits()
    assert post_revenue().posted == 1
    consume(account=account, feature="api_call", quantity=D(30))
    assert post_revenue().posted == 1
    another_transaction_commits()
    assert post_revenue().posted == 0
    assert RevenueLine.objects.get(kind="consumed").amount == D("0.30")
    assert verify_revenue() == []


def test_the_ledger_txid_index_summarizes_each_range_as_it_fills():
    """An unsummarized BRIN range matches every query: posting would read it whole
    (an empty run over 10 M entries never summarized took 2 s; bench/RESULTS.md)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'ledger_txid'")
        assert "autosummarize=on" in cursor.fetchone()[0]
