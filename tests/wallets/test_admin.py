"""Finance works in the admin: reads wallets and the ledger, corrects balances with a reason."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.services import create_api_key
from apps.usage.services import consume
from apps.wallets.models import CreditGrant, LedgerEntry, Wallet
from tests.factories import CreditTypeFactory, UserFactory
from tests.ledger import D, assert_ledger_sound, give, priced_account, wallet_of

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
    assert "12 credits" in html and "12.000000" not in html  # balance 15 − 3
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


def test_wallet_list_reads_like_a_product_and_sorts_by_the_number(client, finance):
    small, _ = priced_account(credits=5)
    large, _ = priced_account(credits=12500, feature_code="search")
    listing = client.get("/admin/wallets/wallet/").content.decode()
    # The Balance header's sort link (a column index); the number is what it sorts by.
    column = re.search(r'column-balance_human.*?href="\?o=(\d+)[^"]*"', listing, re.S)[1]
    ascending = client.get(f"/admin/wallets/wallet/?o={column}").content.decode()
    assert "12,500 credits" in ascending and "12500.000000" not in ascending
    assert ascending.index(">5 credits<") < ascending.index("12,500 credits")
    descending = client.get(f"/admin/wallets/wallet/?o=-{column}").content.decode()
    assert descending.index("12,500 credits") < descending.index(">5 credits<")


def test_ledger_grant_and_correction_pages_read_like_a_product(client, finance, wallet):
    entries = client.get("/admin/wallets/ledgerentry/").content.decode()
    assert "-3 credits" in entries and "12 credits" in entries  # the consume, balance after
    grant = CreditGrant.objects.filter(wallet=wallet).order_by("id").last()
    grant_page = client.get(f"/admin/wallets/creditgrant/{grant.pk}/change/").content.decode()
    assert "5 credits" in grant_page and "0.00 USD" in grant_page  # amount, cost basis
    form = client.get(f"/admin/wallets/wallet/{wallet.pk}/claw-back/").content.decode()
    assert "Balance 12 credits, held 0 credits, available 12 credits." in form
    done = client.post(
        f"/admin/wallets/wallet/{wallet.pk}/grant/",
        {"amount": "10000", "source": "manual", "reason": "ticket 7"},
        follow=True,
    )
    assert "Granted 10,000 credits." in done.content.decode()


@pytest.fixture
def gpu():
    return CreditTypeFactory(code="gpu_minutes", name="GPU minutes")


def test_account_page_shows_balances_per_credit_type_with_wallet_links(client, wallet, gpu):
    give(wallet.account, "2.5", credit_type=gpu)
    give(wallet.account, 1, credit_type=gpu)
    client.force_login(UserFactory(groups=["Support"]))
    page = client.get(f"/admin/accounts/account/{wallet.account.pk}/change/").content.decode()
    assert "Balances" in page
    gpu_wallet = wallet_of(wallet.account, gpu)
    for shown in (wallet, gpu_wallet):
        assert f"/admin/wallets/wallet/{shown.pk}/change/" in page
    assert "12 credits" in page and "3.5 credits" in page  # balance and available of each
    grants = f"/admin/wallets/creditgrant/?wallet__id__exact={gpu_wallet.pk}"
    assert f'<a href="{grants}">2</a>' in page  # the wallet's active grants
    assert "Grant credits…" not in page  # Support may not grant


def test_finance_grants_to_an_account_without_that_wallet(client, finance, wallet, gpu):
    account = wallet.account
    page = client.get(f"/admin/accounts/account/{account.pk}/change/").content.decode()
    url = f"/admin/accounts/account/{account.pk}/grant-credits/"
    assert url in page and "Grant credits…" in page
    form = client.get(url).content.decode()
    assert "GPU minutes" in form and "Plan period" not in form  # free sources only
    response = client.post(
        url,
        {"credit_type": gpu.pk, "amount": "1500", "source": "trial", "reason": "ticket 99"},
        follow=True,
    )
    assert "Granted 1,500 credits (GPU minutes)" in response.content.decode()
    grant = CreditGrant.objects.get(wallet=wallet_of(account, gpu))
    assert (grant.amount, grant.source, grant.reason) == (D(1500), "trial", "ticket 99")
    entry = LedgerEntry.objects.get(grant=grant)
    assert (entry.kind, entry.amount, entry.acting_user) == ("grant", D(1500), finance)
    assert_ledger_sound(account)


def test_a_refused_grant_shows_on_the_form_and_writes_nothing(client, finance, wallet, gpu):
    url = f"/admin/accounts/account/{wallet.account.pk}/grant-credits/"
    past = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    response = client.post(
        url,
        {"credit_type": gpu.pk, "amount": "5", "source": "promo", "reason": "x",
         "expires_at": past},
    )  # fmt: skip
    assert response.status_code == 200
    assert "expires_at must be in the future" in response.content.decode()
    assert not Wallet.objects.filter(account=wallet.account, credit_type=gpu).exists()
    missing = client.post(url, {"credit_type": gpu.pk, "amount": "5", "source": "promo"})
    assert "This field is required" in missing.content.decode()


def test_support_cannot_grant_from_the_account_page(client, wallet, gpu):
    client.force_login(UserFactory(groups=["Support"]))
    url = f"/admin/accounts/account/{wallet.account.pk}/grant-credits/"
    assert client.get(url).status_code == 403
    data = {"credit_type": gpu.pk, "amount": "5", "source": "promo", "reason": "x"}
    assert client.post(url, data).status_code == 403
    assert not Wallet.objects.filter(account=wallet.account, credit_type=gpu).exists()
