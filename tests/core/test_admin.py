"""Staff screens: every model is reachable by the right group and only by it."""

import re

import pytest
from django.contrib.auth import get_user_model

from apps.accounts.models import ApiKey
from apps.accounts.services import hash_api_key
from apps.catalog.models import CreditType
from tests.factories import (
    AccountFactory,
    CreditPackFactory,
    FeatureFactory,
    PlanAllowanceFactory,
    PlanFeatureFactory,
    SubscriptionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

CATALOG = ["credittype", "feature", "plan", "creditpack"]
ACCOUNTS = ["account", "subscription"]


@pytest.fixture
def sample_data():
    subscription = SubscriptionFactory()
    PlanAllowanceFactory(plan=subscription.plan)
    PlanFeatureFactory(plan=subscription.plan)
    CreditPackFactory()
    FeatureFactory()
    return subscription


def url(app, model, view="changelist", *args):
    suffix = "/".join(str(a) for a in args)
    return {
        "changelist": f"/admin/{app}/{model}/",
        "add": f"/admin/{app}/{model}/add/",
        "change": f"/admin/{app}/{model}/{suffix}/change/",
        "history": f"/admin/{app}/{model}/{suffix}/history/",
    }[view]


def test_superuser_sees_every_screen(client, sample_data):
    client.force_login(get_user_model().objects.create_superuser("root", "r@x.io", "pw"))
    for app, models in (("catalog", CATALOG), ("accounts", [*ACCOUNTS, "apikey"])):
        for model in models:
            assert client.get(url(app, model)).status_code == 200, model
            addable = model != "subscription"  # periods move only through the services
            assert client.get(url(app, model, "add")).status_code == (200 if addable else 403)
    plan = sample_data.plan
    assert client.get(url("catalog", "plan", "change", plan.pk)).status_code == 200
    assert client.get(url("catalog", "plan", "history", plan.pk)).status_code == 200
    assert (
        client.get(url("accounts", "account", "change", sample_data.account.pk)).status_code == 200
    )
    # Search and filters work on the big lists.
    assert client.get("/admin/accounts/account/?q=acct&status__exact=active").status_code == 200
    assert client.get("/admin/catalog/feature/?q=feat&kind__exact=metered").status_code == 200
    autocomplete = client.get(
        "/admin/autocomplete/",
        {
            "app_label": "webhooks",
            "model_name": "webhookendpoint",
            "field_name": "account",
            "term": "a",
        },
    )
    assert autocomplete.status_code == 200


def test_staff_edit_is_recorded_with_who_made_it(client):
    user = UserFactory(groups=["Pricing"])
    client.force_login(user)
    credit_type = CreditType.objects.create(code="credits", name="Credits")
    response = client.post(
        url("catalog", "credittype", "change", credit_type.pk),
        {"code": "credits", "name": "Tokens"},
    )
    assert response.status_code == 302
    latest = credit_type.history.first()
    assert latest.name == "Tokens"
    assert latest.history_user == user
    history_page = client.get(url("catalog", "credittype", "history", credit_type.pk))
    assert user.username in history_page.content.decode()


def test_creating_an_api_key_in_the_admin_shows_the_secret_exactly_once(client):
    admin = get_user_model().objects.create_superuser("root", "r@x.io", "pw")
    client.force_login(admin)
    account = AccountFactory(external_id="acme")
    response = client.post(
        url("accounts", "apikey", "add"),
        {"name": "acme backend", "scopes": ["usage:read", "usage:write"], "account": account.pk},
    )
    assert response.status_code == 200
    html = response.content.decode()
    [secret] = set(re.findall(r"cdk_[A-Za-z0-9]{8}_[A-Za-z0-9]{40}", html))
    api_key = ApiKey.objects.get()
    assert api_key.secret_hash == hash_api_key(secret)
    assert api_key.created_by == admin
    assert "not shown" in html or "never show it again" in html

    change_page = client.get(url("accounts", "apikey", "change", api_key.pk)).content.decode()
    listing = client.get(url("accounts", "apikey")).content.decode()
    assert secret not in change_page
    assert secret not in listing
    assert api_key.prefix in listing


def test_admin_refuses_an_api_key_with_invalid_scopes_for_a_bound_key(client):
    client.force_login(get_user_model().objects.create_superuser("root", "r@x.io", "pw"))
    account = AccountFactory()
    response = client.post(
        url("accounts", "apikey", "add"),
        {"name": "x", "scopes": ["grants:write"], "account": account.pk},
    )
    assert response.status_code == 200
    assert "service keys only" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_revoke_action_revokes_selected_keys(client):
    from apps.accounts.services import create_api_key

    client.force_login(get_user_model().objects.create_superuser("root", "r@x.io", "pw"))
    api_key, _ = create_api_key(name="old", scopes=["usage:read"])
    client.post(url("accounts", "apikey"), {"action": "revoke", "_selected_action": [api_key.pk]})
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None


def page(client, path):
    response = client.get(path)
    assert response.status_code == 200, path
    return response.content.decode()


def test_lists_and_view_only_pages_read_numbers_like_a_product(client):
    """Finance reads the books; every number it sees is grouped, with its unit or currency,
    never a raw six-place decimal."""
    from apps.billing.models import OverageCharge, Purchase
    from apps.usage.models import UsageEvent
    from tests.factories import admin_samples

    admin_samples()  # 100 credits granted, 1 consumed, 1 held; a 1,000-credit purchase
    client.force_login(UserFactory(groups=["Finance"]))
    expected = {
        "/admin/wallets/wallet/": ["99 credits", "98 credits", "1 credit"],
        "/admin/wallets/creditgrant/": ["100 credits", "99 credits"],
        "/admin/wallets/ledgerentry/": ["100 credits", "-1 credit", "99 credits"],
        "/admin/wallets/reservation/": ["1 credit"],
        "/admin/usage/usageevent/": ["1 credit"],
        "/admin/billing/purchase/": ["1,000 credits"],
        "/admin/billing/overagecharge/": ["1.00 USD / credit", "1.00 USD"],
        "/admin/catalog/plan/": ["29.00 USD / month"],
        "/admin/catalog/creditpack/": ["1,000 credits", "10.00 USD"],
        "/admin/catalog/feature/": ["1 credit / unit"],
        f"/admin/billing/purchase/{Purchase.objects.get().pk}/change/": [
            "1,000 credits", "10.00 USD"
        ],
        f"/admin/billing/overagecharge/{OverageCharge.objects.get().pk}/change/": [
            "1.00 USD / credit"
        ],
        f"/admin/usage/usageevent/{UsageEvent.objects.get().pk}/change/": [
            "1 credit / unit", "99 credits"
        ],
    }  # fmt: skip
    for path, texts in expected.items():
        html = page(client, path)
        for text in texts:
            assert text in html, (path, text)
        if "/change/" not in path:  # an object page's title is the model's own __str__
            assert not re.search(r"\d\.0{6}\b", html), path  # no 1.000000 in a list


def test_catalog_numbers_stay_plain_inputs_for_pricing_and_read_for_support(client):
    subscription = SubscriptionFactory()
    plan = subscription.plan
    plan.rollover_cap = 25000
    plan.save()
    PlanAllowanceFactory(plan=plan, credits_per_period=10000)
    change = url("catalog", "plan", "change", plan.pk)

    client.force_login(UserFactory(groups=["Pricing"]))
    editable = page(client, change)
    assert 'name="price" value="29.00"' in editable
    assert 'value="10000.000000"' in editable  # the allowance input round-trips
    assert 'value="25000.000000"' in editable

    client.force_login(UserFactory(groups=["Support"]))
    viewed = page(client, change)
    assert "29.00 USD" in viewed and "10,000 credits" in viewed and "25,000 credits" in viewed
    assert 'value="29.00"' not in viewed and 'value="10000.000000"' not in viewed  # no inputs
