"""Webhook endpoints over the API: registered for one account or for every account, the
secret shown once, rotated with an overlap during which both secrets sign, and what a key
bound to an account may do."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.services import create_api_key
from apps.webhooks.models import WebhookEndpoint
from apps.webhooks.services import deliver
from tests.api.conftest import error_code
from tests.factories import AccountFactory
from tests.ledger import give

pytestmark = pytest.mark.django_db
PATH = "/api/v1/webhook-endpoints"


@pytest.fixture
def key_for(api_client):
    """`key_for(account=None)`: the client, authorised by a webhooks:write key (bound to
    `account`, or a service key)."""

    def use(account=None):
        _, raw = create_api_key(name="hooks", scopes=["webhooks:write"], account=account)
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return api_client

    return use


def test_an_endpoint_for_every_account_receives_every_accounts_events(key_for, receiver):
    AccountFactory(external_id="acme"), AccountFactory(external_id="globex")
    client = key_for()
    created = client.post(PATH, {"url": receiver.url, "event_types": ["credits.granted"]},
                          format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["account"], body["event_types"], body["active"]) == (
        None, ["credits.granted"], True,
    )  # fmt: skip
    secret = body["secret"]
    assert secret.startswith("whsec_")
    # Shown once: never listed or read again.
    listed = client.get(PATH).json()["results"]
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    assert "secret" not in client.get(f"{PATH}/{body['id']}").json()
    for name in ("acme", "globex"):
        give(AccountFactory._meta.model.objects.get(external_id=name), 5)
    for delivery in WebhookEndpoint.objects.get().deliveries.all():
        assert deliver(delivery_id=delivery.pk).status == "succeeded"
    assert sorted(e["data"]["account"] for e in receiver.events()) == ["acme", "globex"]
    assert all(receiver.verify(secret, request) for request in receiver.received)


def test_a_rotated_secret_signs_beside_the_new_one_until_the_overlap_ends(
    key_for, receiver, time_machine
):
    account = AccountFactory(external_id="acme")
    client = key_for()
    created = client.post(PATH, {"url": receiver.url, "account": "acme"}, format="json").json()
    rotated = client.post(f"{PATH}/{created['id']}/rotate-secret", {"overlap_hours": 2},
                          format="json")  # fmt: skip
    assert rotated.status_code == 200, rotated.json()
    old, new = created["secret"], rotated.json()["secret"]
    assert new != old and rotated.json()["previous_secret_expires_at"] is not None
    give(account, 5)
    deliver(delivery_id=WebhookEndpoint.objects.get().deliveries.get().pk)
    [during] = receiver.received
    assert receiver.verify(old, during) and receiver.verify(new, during)
    time_machine.move_to(timezone.now() + timedelta(hours=2, seconds=1))
    give(account, 5)
    later = WebhookEndpoint.objects.get().deliveries.order_by("pk").last()
    deliver(delivery_id=later.pk)
    after = receiver.received[-1]
    assert receiver.verify(new, after) and not receiver.verify(old, after)
    too_long = client.post(f"{PATH}/{created['id']}/rotate-secret", {"overlap_hours": 169},
                           format="json")  # fmt: skip
    assert (too_long.status_code, error_code(too_long)) == (400, "validation_error")


def test_a_key_bound_to_an_account_manages_only_its_own_endpoints(key_for, receiver):
    acme, globex = AccountFactory(external_id="acme"), AccountFactory(external_id="globex")
    theirs = WebhookEndpoint.objects.create(account=globex, url=receiver.url)
    every = WebhookEndpoint.objects.create(account=None, url=receiver.url)
    client = key_for(acme)
    own = client.post(PATH, {"url": receiver.url, "account": "acme"}, format="json")
    assert own.status_code == 201
    assert [e["id"] for e in client.get(PATH).json()["results"]] == [own.json()["id"]]
    for endpoint in (theirs, every):
        for answer in (
            client.get(f"{PATH}/{endpoint.pk}"),
            client.delete(f"{PATH}/{endpoint.pk}"),
            client.post(f"{PATH}/{endpoint.pk}/rotate-secret", {}, format="json"),
        ):
            assert (answer.status_code, error_code(answer)) == (404, "not_found")
    for_all = client.post(PATH, {"url": receiver.url}, format="json")
    assert (for_all.status_code, error_code(for_all)) == (403, "permission_denied")
    other = client.post(PATH, {"url": receiver.url, "account": "globex"}, format="json")
    assert (other.status_code, error_code(other)) == (404, "account_not_found")
    assert client.delete(f"{PATH}/{own.json()['id']}").status_code == 204
    assert set(WebhookEndpoint.objects.values_list("pk", flat=True)) == {theirs.pk, every.pk}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"url": "https://169.254.169.254/latest"}, 403, "destination_refused"),
        ({"url": "https://b\u00fccher.example/in"}, 400, "validation_error"),
        ({"url": "https://hooks/in"}, 403, "destination_refused"),
        ({"url": "ftp://hooks.example.com/in"}, 400, "validation_error"),
        ({"url": "https://hooks.example.com/in", "event_types": ["credits.stolen"]}, 400,
         "validation_error"),
    ],
    ids=["metadata service", "not ascii", "no domain", "not http", "unknown event"],
)  # fmt: skip
def test_an_endpoint_webhooks_may_not_reach_or_an_unknown_event_is_refused(
    key_for, body, status, code
):
    answer = key_for().post(PATH, body, format="json")
    assert (answer.status_code, error_code(answer)) == (status, code)
    assert WebhookEndpoint.objects.count() == 0
