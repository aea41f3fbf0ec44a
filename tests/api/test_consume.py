"""POST check, consume, consume/batch: the API's shapes, statuses and error codes."""

import pytest

from apps.usage.models import UsageEvent
from tests.api.conftest import error_code
from tests.factories import FeatureFactory, PlanFactory, PlanFeatureFactory
from tests.ledger import D, priced_account, wallet_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    account, _ = priced_account(credits=10, credits_per_unit="2.5", external_id="acme-1")
    return account


def test_consume_answers_201_with_what_it_charged(authed_client, account):
    response = authed_client.post(
        "/api/v1/consume", {"account": "acme-1", "feature": "api_call", "quantity": "2"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.json()
    body = response.json()
    assert {k: body[k] for k in ("account", "feature", "quantity", "credits", "credit_type",
                                 "balance_after", "available_after")} == {
        "account": "acme-1", "feature": "api_call", "quantity": "2.000000",
        "credits": "5.000000", "credit_type": "credits", "balance_after": "5.000000",
        "available_after": "5.000000",
    }  # fmt: skip
    assert set(body) == {"id", "account", "feature", "quantity", "credits", "credit_type",
                         "balance_after", "available_after", "created_at"}  # fmt: skip
    assert "Idempotent-Replayed" not in response.headers


def test_a_repeat_with_the_same_key_replays_status_and_body(authed_client, account):
    body = {"account": "acme-1", "feature": "api_call", "idempotency_key": "k1"}
    first = authed_client.post("/api/v1/consume", body, format="json")
    again = authed_client.post("/api/v1/consume", body, format="json")
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    other = authed_client.post("/api/v1/consume", {**body, "quantity": 2}, format="json")
    assert (other.status_code, error_code(other)) == (409, "idempotency_key_reused")
    assert UsageEvent.objects.count() == 1


def test_the_idempotency_key_header_is_the_body_field(authed_client, account):
    """Stripe's convention: `Idempotency-Key` says what `idempotency_key` says; both may be
    sent when they agree (409 when not); a header longer than a key is 400."""
    body = {"account": "acme-1", "feature": "api_call"}
    first = authed_client.post("/api/v1/consume", body, format="json", HTTP_IDEMPOTENCY_KEY="h1")
    by_field = authed_client.post("/api/v1/consume", {**body, "idempotency_key": "h1"},
                                  format="json")  # fmt: skip
    both = authed_client.post("/api/v1/consume", {**body, "idempotency_key": "h1"},
                              format="json", HTTP_IDEMPOTENCY_KEY="h1")  # fmt: skip
    assert [a.status_code for a in (first, by_field, both)] == [201, 201, 201]
    assert by_field.json() == both.json() == first.json()
    assert by_field.headers["Idempotent-Replayed"] == both.headers["Idempotent-Replayed"] == "true"
    assert UsageEvent.objects.count() == 1
    reused = authed_client.post("/api/v1/consume", {**body, "quantity": 2}, format="json",
                                HTTP_IDEMPOTENCY_KEY="h1")  # fmt: skip
    assert (reused.status_code, error_code(reused)) == (409, "idempotency_key_reused")
    two = authed_client.post("/api/v1/consume", {**body, "idempotency_key": "h2"},
                             format="json", HTTP_IDEMPOTENCY_KEY="h1")  # fmt: skip
    assert (two.status_code, error_code(two)) == (409, "idempotency_keys_differ")
    long = authed_client.post("/api/v1/consume", body, format="json",
                              HTTP_IDEMPOTENCY_KEY="x" * 256)  # fmt: skip
    assert (long.status_code, error_code(long)) == (400, "validation_error")
    assert "idempotency_key" in long.json()["error"]["details"]
    assert UsageEvent.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"quantity": 5}, 402, "insufficient_credits"),
        ({"feature": "nope"}, 404, "feature_not_found"),
        ({"account": "ghost"}, 404, "account_not_found"),
        ({"quantity": "0"}, 400, "validation_error"),
        ({"quantity": "1.0000001"}, 400, "validation_error"),
        ({"quantity": True}, 400, "validation_error"),
        ({"quantity": ""}, 400, "validation_error"),
        ({"quantity": "NaN"}, 400, "validation_error"),
        ({"quantity": "Infinity"}, 400, "validation_error"),
        ({"quantity": "1e400"}, 400, "validation_error"),
        ({"metadata": []}, 400, "validation_error"),
        ({"metadata": {"x": "y" * 5000}}, 400, "validation_error"),
        ({"account": "bad id!"}, 400, "validation_error"),
    ],
)
def test_consume_errors_follow_the_contract_and_write_nothing(authed_client, account, body,
                                                             status, code):  # fmt: skip
    payload = {"account": "acme-1", "feature": "api_call", **body}
    response = authed_client.post("/api/v1/consume", payload, format="json")
    assert (response.status_code, error_code(response)) == (status, code), response.json()
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert UsageEvent.objects.count() == 0
    assert wallet_of(account).balance == D(10)


def test_insufficient_credits_details_say_what_is_missing(authed_client, account):
    response = authed_client.post(
        "/api/v1/consume", {"account": "acme-1", "feature": "api_call", "quantity": 5},
        format="json",
    )  # fmt: skip
    assert response.json()["error"]["details"] == {
        "credit_type": "credits", "credits_required": "12.5", "available": "10",
    }  # fmt: skip


def test_json_numbers_are_read_exactly(authed_client, account):
    response = authed_client.post(
        "/api/v1/consume",
        data=b'{"account": "acme-1", "feature": "api_call", "quantity": 0.4}',
        content_type="application/json",
    )
    assert response.json()["credits"] == "1.000000"


def test_malformed_json_is_its_own_error(authed_client, account):
    response = authed_client.post(
        "/api/v1/consume", data=b'{"account": ', content_type="application/json"
    )
    assert (response.status_code, error_code(response)) == (400, "malformed_json")


def test_suspended_accounts_and_disabled_features_are_403(authed_client):
    priced_account(credits=10, external_id="off", status="suspended")
    response = authed_client.post(
        "/api/v1/consume", {"account": "off", "feature": "api_call"}, format="json"
    )
    assert (response.status_code, error_code(response)) == (403, "account_suspended")


@pytest.mark.parametrize("kind", ["metered", "boolean"])
def test_a_feature_the_plan_does_not_enable_is_403_whatever_its_kind(authed_client, kind):
    plan = PlanFactory()
    feature = FeatureFactory(code="export", kind=kind,
                             **({} if kind == "metered" else {"credit_type": None}))  # fmt: skip
    PlanFeatureFactory(plan=plan, feature=feature, enabled=False)
    priced_account(credits=10, plan=plan, external_id="acme-2")
    event = {"account": "acme-2", "feature": "export", "quantity": "1"}
    consumed = authed_client.post("/api/v1/consume", event, format="json")
    reserved = authed_client.post("/api/v1/reservations", event, format="json")
    for response in (consumed, reserved):
        assert (response.status_code, error_code(response)) == (403, "feature_not_enabled")
    batch = authed_client.post("/api/v1/consume/batch", {"events": [event, event]}, format="json")
    assert [(r["status"], r["error"]["code"]) for r in batch.json()["results"]] == [
        (403, "feature_not_enabled")
    ] * 2
    checked = authed_client.post("/api/v1/check", event, format="json")
    assert (checked.status_code, checked.json()["allowed"], checked.json()["reason"]) == (
        200, False, "feature_not_enabled",
    )  # fmt: skip
    assert UsageEvent.objects.count() == 0


def test_check_answers_without_writing(authed_client, account):
    response = authed_client.post(
        "/api/v1/check", {"account": "acme-1", "feature": "api_call", "quantity": 8},
        format="json",
    )  # fmt: skip
    assert response.status_code == 200
    assert response.json() == {
        "allowed": False, "reason": "insufficient_credits", "credits_required": "20.000000",
        "credit_type": "credits", "available": "10.000000",
    }  # fmt: skip
    assert UsageEvent.objects.count() == 0


def test_batch_results_keep_their_order_and_each_event_stands_alone(authed_client, account):
    events = [
        {"account": "acme-1", "feature": "api_call"},
        {"account": "acme-1", "feature": "api_call", "quantity": 100},
        {"account": "acme-1", "feature": "nope"},
        {"account": "acme-1", "feature": "api_call", "quantity": "x"},
        {"account": "ghost", "feature": "api_call"},
        {"account": "acme-1", "feature": "api_call"},
    ]
    response = authed_client.post("/api/v1/consume/batch", {"events": events}, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [
        (0, 201), (1, 402), (2, 404), (3, 400), (4, 404), (5, 201),
    ]  # fmt: skip
    assert [r.get("error", {}).get("code") for r in results] == [
        None, "insufficient_credits", "feature_not_found", "validation_error",
        "account_not_found", None,
    ]  # fmt: skip
    assert results[0]["credits"] == "2.500000"
    assert wallet_of(account).balance == D(5)


def test_a_batch_needs_1_to_1000_events(authed_client, account):
    empty = authed_client.post("/api/v1/consume/batch", {"events": []}, format="json")
    assert (empty.status_code, error_code(empty)) == (400, "validation_error")
    event = {"account": "acme-1", "feature": "api_call", "quantity": "0.000001"}
    big = authed_client.post("/api/v1/consume/batch", {"events": [event] * 1001}, format="json")
    assert (big.status_code, error_code(big)) == (413, "batch_too_large")
    assert UsageEvent.objects.count() == 0


def test_a_body_over_1_mib_is_refused_before_parsing(authed_client, account):
    response = authed_client.post(
        "/api/v1/consume/batch", data=b"[" + b" " * (1024 * 1024) + b"]",
        content_type="application/json",
    )  # fmt: skip
    assert (response.status_code, error_code(response)) == (413, "batch_too_large")


def test_overage_plans_answer_with_a_negative_balance(authed_client):
    plan = PlanFactory(overage_policy="allow", overage_limit=D(5))
    priced_account(plan=plan, external_id="od")
    response = authed_client.post(
        "/api/v1/consume", {"account": "od", "feature": "api_call", "quantity": 3}, format="json"
    )
    assert response.json()["balance_after"] == "-3.000000"


def test_text_no_database_can_store_is_refused_not_a_server_error(authed_client, account):
    nul = authed_client.post(
        "/api/v1/consume",
        {"account": "acme-1", "feature": "api_call", "metadata": {"note": "a\x00b"}},
        format="json",
    )
    assert (nul.status_code, error_code(nul)) == (400, "validation_error")
    surrogate = authed_client.post(
        "/api/v1/consume",
        data=b'{"account": "acme-1", "feature": "api_call", "metadata": {"x": "\\ud800"}}',
        content_type="application/json",
    )
    assert (surrogate.status_code, error_code(surrogate)) == (400, "malformed_json")
    pair = authed_client.post(
        "/api/v1/consume",
        data=b'{"account": "acme-1", "feature": "api_call", "metadata": {"x": "\\ud83d\\ude00"}}',
        content_type="application/json",
    )
    assert pair.status_code == 201
