import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.accounts.models import ApiKey
from apps.accounts.services import create_api_key, revoke_api_key
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db


def create_key_by_command(*args):
    out = StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue()


def get_plans(client, raw_key):
    return client.get("/api/v1/plans", HTTP_AUTHORIZATION=f"Bearer {raw_key}")


def test_command_prints_a_secret_that_works_as_a_bearer_key(api_client):
    output = json.loads(create_key_by_command("--name", "app", "--scopes", "usage:read", "--json"))
    assert output["scopes"] == ["usage:read"]
    assert get_plans(api_client, output["key"]).status_code == 200


def test_stored_row_holds_no_secret():
    api_key, raw_key = create_api_key(name="app", scopes=["usage:write"])
    secret_part = raw_key.rsplit("_", 1)[1]
    row = ApiKey.objects.filter(pk=api_key.pk).values().get()
    assert not any(secret_part in str(value) for value in row.values())
    history = api_key.history.values().get()
    assert not any(secret_part in str(value) for value in history.values())
    assert raw_key.startswith(api_key.prefix + "_")


def test_command_binds_a_key_to_an_account_and_sets_expiry():
    AccountFactory(external_id="acme")
    output = json.loads(
        create_key_by_command(
            "--name", "acme app", "--scopes", "usage:write,usage:read", "--account", "acme",
            "--expires-in-days", "30", "--json",
        )
    )  # fmt: skip
    api_key = ApiKey.objects.get(prefix=output["prefix"])
    assert api_key.account.external_id == "acme"
    assert timedelta(days=29) < api_key.expires_at - timezone.now() <= timedelta(days=30)


def test_command_text_output_shows_the_secret_once_with_a_warning():
    output = create_key_by_command("--name", "app", "--scopes", "usage:read")
    assert "not shown again" in output
    assert output.count("cdk_") == 2  # the secret, and its prefix in the summary line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "x", "--scopes", "usage:fly"], "Unknown scope(s): usage:fly"),
        (["--name", "x", "--scopes", "usage:read", "--account", "ghost"], "No account"),
        (["--name", " ", "--scopes", "usage:read"], "Give the key a name"),
        (["--name", "x", "--scopes", "usage:read", "--expires-in-days", "0"], "at least 1"),
    ],
)
def test_command_rejects_bad_input_clearly_and_creates_nothing(args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        create_key_by_command(*args)
    assert not ApiKey.objects.exists()


def test_grants_scope_is_for_service_keys_only():
    AccountFactory(external_id="acme")
    with pytest.raises(CommandError, match="service keys only"):
        create_key_by_command("--name", "x", "--scopes", "grants:write", "--account", "acme")


def test_revoked_key_is_refused(api_client):
    api_key, raw_key = create_api_key(name="app", scopes=["usage:read"])
    revoke_api_key(api_key=api_key)
    response = get_plans(api_client, raw_key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_expired_key_is_refused(api_client, time_machine):
    api_key, raw_key = create_api_key(
        name="app", scopes=["usage:read"], expires_at=timezone.now() + timedelta(days=1)
    )
    time_machine.move_to(timezone.now() + timedelta(days=2))
    assert get_plans(api_client, raw_key).status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Bearer nonsense", "Bearer cdk_AAAAAAAA_" + "B" * 40, "Token abc", "Bearer "],
)
def test_malformed_or_unknown_keys_are_refused(api_client, service_key, header):
    response = api_client.get("/api/v1/plans", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_key_with_a_right_prefix_but_wrong_secret_is_refused(api_client, service_key):
    forged = service_key[:-1] + ("A" if service_key[-1] != "A" else "B")
    assert get_plans(api_client, forged).status_code == 401
