"""Wallets as they stood at a moment, for many accounts at once (`wallets_at`): what the
pricing simulator starts from, rebuilt from the ledger alone."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.usage.services import consume
from apps.wallets.models import CreditGrant, Wallet
from apps.wallets.selectors import wallets_at
from apps.wallets.services import grant_credits
from tests.factories import AccountFactory, CreditTypeFactory, FeatureFactory

pytestmark = pytest.mark.django_db
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def as_they_are(accounts):
    """The live wallets and their grants with credits left, as wallets_at would show them."""
    grants = CreditGrant.objects.filter(account__in=accounts, remaining__gt=0)
    return {
        w.pk: (
            w.balance,
            w.held,
            sorted((g.pk, g.remaining) for g in grants if g.wallet_id == w.pk),
        )
        for w in Wallet.objects.filter(account__in=accounts)
    }


def as_rebuilt(accounts, at):
    return {
        w.wallet_id: (w.balance, w.held, sorted((g.pk, g.remaining) for g in w.grants))
        for w in wallets_at(account_ids=[a.pk for a in accounts], at=at).values()
    }


def test_a_past_moment_and_now_are_rebuilt_exactly_for_every_account(time_machine):
    credits = CreditTypeFactory()
    FeatureFactory(code="api_call", credit_type=credits)
    accounts = [AccountFactory(external_id=f"a{i}") for i in range(3)]
    time_machine.move_to(START, tick=False)
    for i, account in enumerate(accounts):
        grant_credits(account=account, credit_type=credits, amount=D(100 + i), source="promo")
        grant_credits(account=account, credit_type=credits, amount=D(10), source="promo",
                      expires_at=START + timedelta(days=3))  # fmt: skip
    seen = {}
    for day in range(1, 6):
        time_machine.move_to(START + timedelta(days=day), tick=False)
        for i, account in enumerate(accounts):
            consume(account=account, feature="api_call", quantity=D(day + i))
        seen[day] = as_they_are(accounts)

    # Day 2 as it was then, though day 5 has happened since; the expiring grant is in it.
    assert as_rebuilt(accounts, START + timedelta(days=2)) == seen[2]
    # After its expiry the grant is left out, spent or not, as a consume then would.
    assert all(
        len(grants) == 1
        for _, _, grants in as_rebuilt(accounts, START + timedelta(days=4)).values()
    )
    assert as_rebuilt(accounts, START + timedelta(days=5)) == seen[5]


def test_the_queries_do_not_grow_with_the_accounts(time_machine):
    credits = CreditTypeFactory()
    time_machine.move_to(START, tick=False)
    accounts = [AccountFactory(external_id=f"b{i}") for i in range(12)]
    for account in accounts:
        grant_credits(account=account, credit_type=credits, amount=D(5), source="promo")

    def queries(some):
        with CaptureQueriesContext(connection) as captured:
            rebuilt = wallets_at(account_ids=[a.pk for a in some], at=START)
        assert len(rebuilt) == len(some)
        return len(captured.captured_queries)

    assert queries(accounts[:2]) == queries(accounts) == 4
