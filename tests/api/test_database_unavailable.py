"""When the database goes away (a restart, a failover), the API answers 503
`service_unavailable` with Retry-After on both paths, charges nothing, and comes back by
itself; a connection the server closed while idle is replaced before the next request uses
it. tests/reliability/ restarts a real server under load."""

import time
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from apps.accounts.services import create_api_key
from apps.usage.models import UsageEvent
from tests.api.conftest import FastLaneClient, error_code
from tests.ledger import D, priced_account, wallet_of
from tests.processes import spare_port

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
BODY = {"account": "acme", "feature": "api_call"}


@pytest.fixture
def clients():
    priced_account(credits=100, external_id="acme")
    _, raw = create_api_key(name="outage", scopes=["usage:write", "usage:read"])
    lane, django = FastLaneClient(), APIClient()
    for client in (lane, django):
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return lane, django


@pytest.fixture
def database_unreachable():
    """This thread's connection points at a port nothing listens on, then back."""
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = spare_port()
    yield
    connection.close()
    connection.settings_dict["PORT"] = port


def test_an_unreachable_database_is_503_with_retry_after_on_both_paths(
    clients, database_unreachable
):
    lane, django = clients
    answers = [
        lane.post("/api/v1/consume", BODY, format="json"),
        lane.post("/api/v1/check", BODY, format="json"),
        django.post("/api/v1/consume", BODY, format="json"),
        django.post("/api/v1/consume", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-1"),
        django.get("/api/v1/accounts/acme/balance"),
    ]
    assert [(a.status_code, error_code(a), a.headers["Retry-After"]) for a in answers] == [
        (503, "service_unavailable", "1")
    ] * 5
    assert answers[0].from_fast_lane
    assert all(a.json()["error"]["details"]["request_id"] for a in answers)


def test_service_comes_back_with_the_database_and_nothing_was_charged(clients):
    lane, _ = clients
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = spare_port()
    try:
        assert lane.post("/api/v1/consume", BODY, format="json").status_code == 503
    finally:
        connection.settings_dict["PORT"] = port
    assert lane.post("/api/v1/consume", BODY, format="json").status_code == 201
    assert UsageEvent.objects.count() == 1
    assert wallet_of(UsageEvent.objects.get().account).balance == D(99)


def test_a_connection_the_server_closed_while_idle_is_replaced_before_the_lanes_statement(
    clients,
):
    lane, _ = clients
    assert lane.post("/api/v1/consume", BODY, format="json").from_fast_lane
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    with _another_connection() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)  # the server's goodbye reaches the idle socket
    answer = lane.post("/api/v1/consume", BODY, format="json")
    assert (answer.status_code, answer.from_fast_lane) == (201, True)
    assert UsageEvent.objects.count() == 2


@contextmanager
def _another_connection():
    """A connection of its own (the test's thread has one already)."""
    settings = connection.settings_dict
    with psycopg.connect(host=settings["HOST"] or "127.0.0.1", port=settings["PORT"] or 5432,
                         user=settings["USER"], dbname=settings["NAME"],
                         autocommit=True) as other:  # fmt: skip
        yield other
