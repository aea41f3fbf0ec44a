"""Finance works in the admin: reads wallets and the ledger, corrects balances with a reason."""

import pytest

from apps.accounts.services import create_api_key
from apps.usage.services import consume
from apps.wallets.models import CreditGrant, LedgerEntry
from tests.factories import UserFactory
from tests.ledger import D, give, priced_account, wallet_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def wallet():
    account, _ = priced_account(credits=10)
    give(account, 5, days=10)
    consume(account=account, feature="api_call", quantity=3)
    return wallet_of(account)


@pytest.fixture
def finance(client):
    user = UserFactory(groups=["Finance"])
    client.force_login(user)
    return user


def test_wallet_page_shows_balance_grants_and_recent_entries(client, finance, wallet):
    html = client.get(f"/admin/wallets/wallet/{wallet.pk}/change/").content.decode()
    assert "12.000000" in html  # balance 15 − 3
    assert "Last 25 ledger entries" in html and "consume" in html
    assert "Grant credits…" in html and "Claw back…" in html and "Void…" in html


def test_a_grant_made_over_the_api_names_its_key_in_the_grant_list_and_on_the_wallet(
    client, finance
):
    account, _ = priced_account(external_id="acme")
    api_key, _ = create_api_key(name="billing service", scopes=["grants:write"])
    give(account, 7, reference="promo-7", api_key=api_key)
    grant_list = client.get("/admin/wallets/creditgrant/").content.decode()
    wallet_page = client.get(f"/admin/wallets/wallet/{wallet_of(account).pk}/change/")
    for html in (grant_list, wallet_page.content.decode()):
        assert "API key" in html and str(api_key) in html


def test_finance_grants_credits_with_a_reason_and_is_recorded(client, finance, wallet):
    response = client.post(
        f"/admin/wallets/wallet/{wallet.pk}/grant/",
        {"amount": "2.5", "source": "manual", "reason": "ticket 42", "priority": ""},
    )
    assert response.status_code == 302
    entry = LedgerEntry.objects.filter(kind="grant").latest("id")
    assert (entry.amount, entry.acting_user, entry.reason) == (D("2.5"), finance, "ticket 42")
    assert wallet_of(wallet.account).balance == D("14.5")


def test_a_correction_without_a_reason_is_refused(client, finance, wallet):
    response = client.post(f"/admin/wallets/wallet/{wallet.pk}/claw-back/", {"amount": "1"})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert wallet_of(wallet.account).balance == D(12)


def test_finance_claws_back_and_sees_a_clear_error_beyond_what_is_available(
    client, finance, wallet
):
    url = f"/admin/wallets/wallet/{wallet.pk}/claw-back/"
    assert client.post(url, {"amount": "2", "reason": "dup"}).status_code == 302
    too_much = client.post(url, {"amount": "100", "reason": "oops"})
    assert "needed" in too_much.content.decode()
    assert wallet_of(wallet.account).balance == D(10)


def test_finance_voids_a_grant(client, finance, wallet):
    grant = CreditGrant.objects.filter(wallet=wallet).order_by("id").last()
    response = client.post(f"/admin/wallets/creditgrant/{grant.pk}/void/", {"reason": "refund"})
    assert response.status_code == 302
    grant.refresh_from_db()
    assert grant.remaining == 0 and grant.voided_at


def test_support_reads_the_ledger_but_cannot_correct_it(client, wallet):
    client.force_login(UserFactory(groups=["Support"]))
    page = client.get(f"/admin/wallets/wallet/{wallet.pk}/change/").content.decode()
    assert "Grant credits…" not in page
    assert client.get(f"/admin/wallets/wallet/{wallet.pk}/grant/").status_code == 403
    assert client.get("/admin/wallets/ledgerentry/").status_code == 200


def test_pricing_does_not_see_the_ledger(client, wallet):
    client.force_login(UserFactory(groups=["Pricing"]))
    assert client.get("/admin/wallets/wallet/").status_code == 403
    assert client.get("/admin/wallets/ledgerentry/").status_code == 403


def test_ledger_list_filters_and_never_offers_to_edit(client, finance, wallet):
    base = "/admin/wallets/ledgerentry/"
    queries = [
        "",
        "?kind__exact=consume",
        f"?wallet__id__exact={wallet.pk}",
        f"?q={wallet.account.external_id}",
        "?created_at__gte=2020-01-01T00:00:00%2B00:00",
    ]
    for query in queries:
        assert client.get(base + query).status_code == 200, query
    entry = LedgerEntry.objects.first()
    page = client.get(f"{base}{entry.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert client.get(f"{base}add/").status_code == 403
    assert client.get(f"{base}{entry.pk}/delete/").status_code == 403
