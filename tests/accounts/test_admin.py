"""The account and API-key screens: who may suspend, see the billing link, revert history
and widen a key."""

import pytest
from django.contrib.auth import get_user_model

from apps.accounts.models import Account, ApiKey
from apps.accounts.services import create_api_key, revoke_api_key, set_account_status
from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db


def history_id(obj, *, oldest=True):
    records = obj.history.order_by("history_id")
    return (records.first() if oldest else records.last()).history_id


@pytest.fixture
def superuser_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", "r@x.io", "pw"))
    return client


def test_support_cannot_suspend_or_reactivate_by_posting_the_action(client):
    account = AccountFactory(status=Account.Status.SUSPENDED)
    client.force_login(UserFactory(groups=["Support"]))
    client.post(
        "/admin/accounts/account/",
        {"action": "reactivate", "_selected_action": [account.pk], "index": 0},
    )
    account.refresh_from_db()
    assert account.status == Account.Status.SUSPENDED


def test_finance_suspends_and_reactivates_through_the_actions(client):
    account = AccountFactory()
    client.force_login(UserFactory(groups=["Finance"]))
    for action, status in (("suspend", "suspended"), ("reactivate", "active")):
        client.post(
            "/admin/accounts/account/",
            {"action": action, "_selected_action": [account.pk], "index": 0},
        )
        account.refresh_from_db()
        assert account.status == status


def test_support_cannot_reactivate_a_suspended_account_through_its_history(client):
    account = AccountFactory()  # history: created active …
    set_account_status(account=account, status=Account.Status.SUSPENDED)  # … then suspended
    client.force_login(UserFactory(groups=["Support"]))
    url = f"/admin/accounts/account/{account.pk}/history/{history_id(account)}/"
    assert client.get(url).status_code == 200  # they may read it
    response = client.post(url, {"external_id": account.external_id, "name": "x", "email": ""})
    assert response.status_code == 403
    account.refresh_from_db()
    assert account.status == Account.Status.SUSPENDED


def test_a_revert_restores_what_the_form_edits_and_never_the_status(client):
    account = AccountFactory(name="Old name")
    account.name = "New name"
    account.save()
    set_account_status(account=account, status=Account.Status.SUSPENDED)
    client.force_login(UserFactory(groups=["Finance"]))
    url = f"/admin/accounts/account/{account.pk}/history/{history_id(account)}/"
    form = {
        "external_id": account.external_id,
        "name": "Old name",
        "email": account.email,
        "metadata": "{}",
        "subscriptions-TOTAL_FORMS": 0,
        "subscriptions-INITIAL_FORMS": 0,
        "auto_recharge-TOTAL_FORMS": 0,
        "auto_recharge-INITIAL_FORMS": 0,
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    account.refresh_from_db()
    assert account.name == "Old name"
    assert account.status == Account.Status.SUSPENDED  # read-only: moves only by the actions


def test_the_billing_link_is_shown_only_to_staff_who_may_change_the_account(client):
    account = AccountFactory()
    url = f"/admin/accounts/account/{account.pk}/change/"
    client.force_login(UserFactory(groups=["Support"]))
    assert "Open as the customer sees it" not in client.get(url).content.decode()
    client.force_login(UserFactory(groups=["Finance"]))
    assert "Open as the customer sees it" in client.get(url).content.decode()


def test_editing_a_bound_key_cannot_add_grants_write(superuser_client):
    account = AccountFactory()
    api_key, _ = create_api_key(name="app", scopes=["usage:read"], account=account)
    response = superuser_client.post(
        f"/admin/accounts/apikey/{api_key.pk}/change/",
        {"name": "app", "scopes": ["usage:read", "grants:write"]},
    )
    assert response.status_code == 200
    assert "service keys only" in response.content.decode()
    api_key.refresh_from_db()
    assert api_key.scopes == ["usage:read"]


def test_editing_a_service_key_keeps_working(superuser_client):
    api_key, _ = create_api_key(name="svc", scopes=["usage:read"])
    response = superuser_client.post(
        f"/admin/accounts/apikey/{api_key.pk}/change/",
        {"name": "svc", "scopes": ["usage:read", "grants:write"]},
    )
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.scopes == ["grants:write", "usage:read"]


def test_no_revert_can_un_revoke_an_api_key(superuser_client):
    api_key, _ = create_api_key(name="old", scopes=["usage:read"])
    revoke_api_key(api_key=api_key)
    url = f"/admin/accounts/apikey/{api_key.pk}/history/{history_id(api_key)}/"
    response = superuser_client.post(url, {"name": "old", "scopes": ["usage:read"]})
    assert response.status_code == 403
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert ApiKey.objects.count() == 1
