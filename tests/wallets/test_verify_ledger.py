from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.usage.services import consume, reserve
from apps.wallets.models import CreditGrant, LedgerEntry, Wallet
from tests.ledger import D, give, priced_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy_account():
    account, _ = priced_account(credits=10)
    give(account, 5, days=3)
    consume(account=account, feature="api_call", quantity=7)
    reserve(account=account, feature="api_call", quantity=2)
    return account


def verify(*args):
    out, err = StringIO(), StringIO()
    call_command("verify_ledger", *args, stdout=out, stderr=err)
    return out.getvalue()


def test_a_sound_ledger_passes_with_a_summary(busy_account):
    assert "1 wallets, 2 grants, 5 ledger entries checked: 0 violation(s)." in verify()
    assert "0 violation(s)" in verify("--account", busy_account.external_id)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda: Wallet.objects.update(balance=D(99)), "balance 99.000000 != Σ ledger"),
        (lambda: Wallet.objects.update(held=D(0)), "held 0.000000 != Σ ledger held"),
        (lambda: CreditGrant.objects.filter(amount=5).update(remaining=D(4)), "!= its ledger"),
    ],
)
def test_any_tampering_is_reported_and_fails_the_command(busy_account, tamper, message):
    tamper()
    err = StringIO()
    with pytest.raises(CommandError, match="violation"):
        call_command("verify_ledger", stdout=StringIO(), stderr=err)
    assert message in err.getvalue()


def test_a_broken_balance_after_chain_is_reported(busy_account):
    wallet = Wallet.objects.get(account=busy_account)
    # An entry whose amounts add up (0) but whose balance_after does not follow the chain.
    LedgerEntry.objects.create(
        account=busy_account, wallet=wallet, kind="adjust", amount=0, balance_after=D(1000)
    )
    err = StringIO()
    with pytest.raises(CommandError, match="violation"):
        call_command("verify_ledger", stdout=StringIO(), stderr=err)
    assert "balance_after 1000.000000 != running Σ amount" in err.getvalue()


def test_an_unknown_account_is_an_error():
    with pytest.raises(CommandError, match="No account"):
        verify("--account", "ghost")
