"""HTTP-level concurrency against a live server on PostgreSQL."""

import http.client
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from apps.accounts.services import create_api_key
from apps.usage.models import UsageEvent
from tests.ledger import D, assert_ledger_sound, priced_account, wallet_of

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def post(url, key, body):
    """POST as a careful client does: a connection the server's listen queue dropped (a
    reset under a burst of 32 clients on two loaded cores) is tried again, which the body's
    idempotency key makes safe."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    for attempt in range(3):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
        except (ConnectionResetError, http.client.RemoteDisconnected, urllib.error.URLError):
            if attempt == 2:
                raise


@pytest.fixture(params=["django live server", "project WSGI application"])
def server(request):
    """`(url, answers of the fast lane or None)`."""
    if request.param == "django live server":
        return request.getfixturevalue("live_server").url, None
    return request.getfixturevalue("wsgi_server")


def test_200_parallel_consumes_on_100_credits_give_100_created_and_100_payment_required(server):
    account, _ = priced_account(credits=100, external_id="race")
    _, key = create_api_key(name="race", scopes=["usage:write"])
    server_url, lane_answers = server
    url = f"{server_url}/api/v1/consume"
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(
            lambda i: post(url, key, {"account": "race", "feature": "api_call",
                                      "idempotency_key": f"race-{i}"}), range(200)
        ))  # fmt: skip
    statuses = sorted(status for status, _ in results)
    assert statuses.count(201) == 100 and statuses.count(402) == 100, statuses
    assert {body["error"]["code"] for status, body in results if status == 402} == {
        "insufficient_credits"
    }
    assert wallet_of(account).balance == D(0)
    assert UsageEvent.objects.count() == 100
    assert_ledger_sound()
    if lane_answers is not None:  # the lane charged; Django's stack answered the refusals
        assert lane_answers == ["201 Created"] * 100
