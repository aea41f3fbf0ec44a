"""Query budgets of the hot endpoints, authentication included."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.services import create_api_key
from tests.ledger import D, give, priced_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("consume_path")]

# Issue 5's budget is 10 with authentication. PostgreSQL: key, account, one function call.
# The portable path (SQLite's) takes 11 for a consume with a quota, plus the same two.
CONSUME_BUDGET = {"database function": 3, "python": 13}


@pytest.fixture
def client(api_client):
    account, _ = priced_account(plan=True, plan_feature={"limit_per_period": D(100)},
                                external_id="acme")  # fmt: skip
    give(account, 50)
    _, raw = create_api_key(name="budget", scopes=["usage:write"])
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    api_client.post("/api/v1/check", {"account": "acme", "feature": "api_call"}, format="json")
    return api_client  # the key's last_used_at was written by this first request


def statements(call):
    with CaptureQueriesContext(connection) as ctx:
        response = call()
    assert response.status_code < 300, response.json()
    return [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]


def test_consume_stays_within_its_query_budget_including_auth(client, consume_path):
    sql = statements(lambda: client.post(
        "/api/v1/consume", {"account": "acme", "feature": "api_call", "idempotency_key": "q"},
        format="json",
    ))  # fmt: skip
    assert len(sql) <= CONSUME_BUDGET[consume_path], sql


def test_check_costs_at_most_5_queries_including_auth(client):
    sql = statements(lambda: client.post(
        "/api/v1/check", {"account": "acme", "feature": "api_call"}, format="json"
    ))  # fmt: skip
    assert len(sql) <= 5, sql


def test_last_used_at_is_written_at_most_once_a_minute(api_client, time_machine):
    from datetime import timedelta

    from django.utils import timezone

    key, raw = create_api_key(name="seen", scopes=["usage:read"])
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    api_client.get("/api/v1/plans")
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None
    api_client.get("/api/v1/plans")
    key.refresh_from_db()
    assert key.last_used_at == first
    time_machine.move_to(timezone.now() + timedelta(minutes=2))
    api_client.get("/api/v1/plans")
    key.refresh_from_db()
    assert key.last_used_at > first
