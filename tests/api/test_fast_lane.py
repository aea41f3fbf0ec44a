"""The fast lane (apps/api/fast_lane.py) answers plain consumes and checks in front of Django.
Whatever it answers must be what Django would have answered; whatever it cannot, Django must
answer as if the lane were not there. The lane runs on PostgreSQL only (its one statement
is a database function): on SQLite Django answers everything."""

import json
from dataclasses import replace
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from apps.accounts.models import ApiKey
from apps.accounts.services import create_api_key, revoke_api_key
from apps.api import fast_lane
from apps.api.parsers import MAX_JSON_DEPTH
from apps.usage.models import UsageEvent
from tests.api.conftest import FastLaneClient, error_code
from tests.ledger import D, priced_account, wallet_of

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
SCOPES = ["usage:write"]


@pytest.fixture
def account():
    account, _ = priced_account(credits=100, credits_per_unit="1.5", external_id="acme")
    return account


@pytest.fixture
def key():
    _, raw = create_api_key(name="lane", scopes=SCOPES)
    return raw


def clients(key, **extra):
    lane, django = FastLaneClient(**extra), APIClient(**extra)
    for client in (lane, django):
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return lane, django


def comparable(response):
    """Everything a caller sees but the request id (fresh per request)."""
    headers = {k: v for k, v in response.headers.items() if k != "X-Request-ID"}
    return response.status_code, headers, response.content


def test_the_lane_answers_a_plain_consume_and_check_itself(account, key):
    lane, _ = clients(key)
    for path, status in (("/api/v1/consume", 201), ("/api/v1/check", 200)):
        response = lane.post(path, {"account": "acme", "feature": "api_call"}, format="json")
        assert response.status_code == status, response.json()
        assert getattr(response, "from_fast_lane", False), path
        assert len(response.headers["X-Request-ID"]) == 32


def test_a_replay_through_the_lane_is_byte_for_byte_djangos(account, key):
    lane, django = clients(key)
    body = {"account": "acme", "feature": "api_call", "quantity": "2", "idempotency_key": "r1",
            "metadata": {"path": "/search", "n": 1.5}}  # fmt: skip
    first = django.post("/api/v1/consume", body, format="json")
    assert first.status_code == 201
    through_lane = lane.post("/api/v1/consume", body, format="json")
    through_django = django.post("/api/v1/consume", body, format="json")
    assert through_lane.from_fast_lane
    assert through_lane.headers["Idempotent-Replayed"] == "true"
    assert comparable(through_lane) == comparable(through_django)
    assert json.loads(through_lane.content) == first.json()
    assert UsageEvent.objects.count() == 1


@pytest.mark.parametrize("secure", [False, True], ids=["http", "https with HSTS"])
def test_a_check_through_the_lane_is_byte_for_byte_djangos(account, key, settings, secure):
    settings.SECURE_HSTS_SECONDS = 3600
    lane, django = clients(key)
    body = {"account": "acme", "feature": "api_call", "quantity": "7.25"}
    answers = [c.post("/api/v1/check", body, format="json", secure=secure) for c in (lane, django)]
    assert answers[0].from_fast_lane
    assert comparable(answers[0]) == comparable(answers[1])
    assert ("Strict-Transport-Security" in answers[0].headers) is secure


def test_the_callers_request_id_comes_back_from_the_lane(account, key):
    lane, _ = clients(key)
    response = lane.post("/api/v1/check", {"account": "acme", "feature": "api_call"},
                         format="json", HTTP_X_REQUEST_ID="app-req-42")  # fmt: skip
    assert response.from_fast_lane and response.headers["X-Request-ID"] == "app-req-42"


@pytest.mark.parametrize(
    ("body", "extra", "status", "code"),
    [
        ({"account": "acme", "feature": "api_call", "quantity": "0"}, {}, 400,
         "validation_error"),
        ({"account": "nobody", "feature": "api_call"}, {}, 404, "account_not_found"),
        ({"account": "acme", "feature": "nope"}, {}, 404, "feature_not_found"),
        ({"account": "acme", "feature": "api_call", "quantity": "1000"}, {}, 402,
         "insufficient_credits"),
        ({"account": "acme", "feature": "api_call"}, {"key": "cdk_x_y"}, 401,
         "unauthenticated"),
        ({"account": "acme", "feature": "api_call"}, {"HTTP_ACCEPT": "text/html"}, 406,
         "not_acceptable"),
        ({"account": "acme", "feature": "api_call", "idempotency_key": "a"},
         {"HTTP_IDEMPOTENCY_KEY": "b"}, 409, "idempotency_keys_differ"),
    ],
    ids=["invalid", "unknown account", "unknown feature", "refused", "bad key", "accept html",
         "two keys"],
)  # fmt: skip
def test_what_the_lane_cannot_answer_django_answers_unchanged(account, key, body, extra, status,
                                                              code):  # fmt: skip
    lane, django = clients(extra.pop("key", key))
    answers = [c.post("/api/v1/consume", body, format="json", **extra) for c in (lane, django)]
    assert not getattr(answers[0], "from_fast_lane", False)
    assert [a.status_code for a in answers] == [status, status]
    assert error_code(answers[0]) == error_code(answers[1]) == code
    assert UsageEvent.objects.count() == 0 and wallet_of(account).balance == D(100)


@pytest.mark.parametrize("host", ["evil.example", ""], ids=["foreign", "empty"])
def test_a_host_django_would_refuse_is_not_answered_by_the_lane(account, key, host, caplog):
    lane, django = clients(key)
    answers = [c.post("/api/v1/consume", {"account": "acme", "feature": "api_call"},
                      format="json", HTTP_HOST=host) for c in (lane, django)]  # fmt: skip
    assert not getattr(answers[0], "from_fast_lane", False)
    assert comparable(answers[0]) == comparable(answers[1])
    assert answers[0].status_code == 400
    assert UsageEvent.objects.count() == 0
    # Logged as one line each: anyone can send these, a traceback apiece would flood the log.
    refused = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert len(refused) == 2 and not any(r.exc_info for r in refused)


@pytest.mark.parametrize("path", ["/api/v1/consume", "/api/v1/check"])
def test_8_kib_of_nested_brackets_is_malformed_json_on_both_paths_without_a_traceback(
    account, key, path, caplog
):
    lane, django = clients(key)
    body = b"[" * fast_lane.MAX_BODY
    answers = [c.post(path, body, content_type="application/json") for c in (lane, django)]
    assert comparable(answers[0]) == comparable(answers[1])
    assert (answers[0].status_code, error_code(answers[0])) == (400, "malformed_json")
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert UsageEvent.objects.count() == 0


def test_json_nested_deeper_than_the_limit_is_malformed_on_both_paths(account, key):
    lane, django = clients(key)
    deep = {}
    for _ in range(MAX_JSON_DEPTH):  # with the body's own object: one level too many
        deep = {"x": deep}
    body = {"account": "acme", "feature": "api_call", "metadata": deep}
    answers = [c.post("/api/v1/consume", body, format="json") for c in (lane, django)]
    assert comparable(answers[0]) == comparable(answers[1])
    assert (answers[0].status_code, error_code(answers[0])) == (400, "malformed_json")
    assert UsageEvent.objects.count() == 0


def test_a_request_the_lane_hands_on_is_counted_once_against_the_rate_limit(account):
    _, raw = create_api_key(name="slow", scopes=SCOPES, rate_limit_per_minute=2)
    lane, _ = clients(raw)
    refused = lane.post("/api/v1/consume", {"account": "acme", "feature": "api_call",
                                            "quantity": "1000"}, format="json")  # fmt: skip
    charged = lane.post("/api/v1/consume", {"account": "acme", "feature": "api_call"},
                        format="json")  # fmt: skip
    limited = lane.post("/api/v1/consume", {"account": "acme", "feature": "api_call"},
                        format="json")  # fmt: skip
    assert [refused.status_code, charged.status_code, limited.status_code] == [402, 201, 429]
    assert error_code(limited) == "rate_limited" and int(limited.headers["Retry-After"]) >= 1


def refused_keys():
    """Keys the database call refuses, each as `(name, raw key)`: revoked, expired, without
    the scope, and the right prefix with a forged secret."""
    revoked, raw_revoked = create_api_key(name="revoked", scopes=SCOPES)
    revoke_api_key(api_key=revoked)
    expired, raw_expired = create_api_key(name="expired", scopes=SCOPES)
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now())
    _, raw_reader = create_api_key(name="reader", scopes=["usage:read"])
    _, raw_real = create_api_key(name="real", scopes=SCOPES)
    forged = raw_real[: raw_real.rindex("_") + 1] + "x" * 40
    return [("revoked", raw_revoked), ("expired", raw_expired), ("no scope", raw_reader),
            ("forged secret", forged)]  # fmt: skip


@pytest.mark.parametrize("path", ["/api/v1/consume", "/api/v1/check"])
def test_a_key_the_database_refuses_gets_djangos_answer_and_nothing_is_charged(account, path):
    for name, raw in refused_keys():
        lane, django = clients(raw)
        body = {"account": "acme", "feature": "api_call"}
        answers = [c.post(path, body, format="json") for c in (lane, django)]
        assert not getattr(answers[0], "from_fast_lane", False), name
        assert answers[0].status_code in (401, 403), name
        assert comparable(answers[0]) == comparable(answers[1]), name
    assert UsageEvent.objects.count() == 0 and wallet_of(account).balance == D(100)


def test_a_forged_secret_does_not_spend_the_real_keys_rate(account):
    real, raw = create_api_key(name="slow", scopes=SCOPES, rate_limit_per_minute=1)
    forged = raw[: raw.rindex("_") + 1] + "x" * 40
    body = {"account": "acme", "feature": "api_call"}
    for _ in range(3):
        assert clients(forged)[0].post("/api/v1/consume", body, format="json").status_code == 401
    assert clients(raw)[0].post("/api/v1/consume", body, format="json").status_code == 201


def test_a_request_refused_for_its_scope_does_not_spend_the_keys_rate(account):
    """DRF judges the scope before the rate; the lane counts first and takes the count back."""
    _, raw = create_api_key(name="reader", scopes=["usage:read"], rate_limit_per_minute=1)
    lane, _ = clients(raw)
    body = {"account": "acme", "feature": "api_call"}
    for path in ("/api/v1/consume", "/api/v1/check", "/api/v1/consume"):
        assert lane.post(path, body, format="json").status_code == 403
    assert lane.get("/api/v1/accounts/acme/balance").status_code == 200
    assert lane.get("/api/v1/accounts/acme/balance").status_code == 429


def test_the_lane_records_a_keys_use_at_most_once_a_minute(account):
    api_key, raw = create_api_key(name="used", scopes=SCOPES)
    lane, _ = clients(raw)
    with time_machine.travel("2031-03-01 10:00:00Z", tick=False) as clock:
        lane.post("/api/v1/check", {"account": "acme", "feature": "api_call"}, format="json")
        api_key.refresh_from_db()
        first = api_key.last_used_at
        clock.shift(30)
        lane.post("/api/v1/consume", {"account": "acme", "feature": "api_call"}, format="json")
        api_key.refresh_from_db()
        assert api_key.last_used_at == first == timezone.now() - timedelta(seconds=30)
        clock.shift(31)
        lane.post("/api/v1/consume", {"account": "acme", "feature": "api_call"}, format="json")
        api_key.refresh_from_db()
        assert api_key.last_used_at == timezone.now()


def test_a_key_bound_to_another_account_gets_404_from_either_path(account):
    other, _ = priced_account(credits=5, external_id="other", feature_code="other_call")
    _, raw = create_api_key(name="bound", scopes=SCOPES, account=other)
    lane, _ = clients(raw)
    response = lane.post("/api/v1/consume", {"account": "acme", "feature": "api_call"},
                         format="json")  # fmt: skip
    assert response.status_code == 404 and error_code(response) == "account_not_found"
    own = lane.post("/api/v1/consume", {"account": "other", "feature": "other_call"},
                    format="json")  # fmt: skip
    assert own.status_code == 201 and own.from_fast_lane


def test_with_the_lane_switched_off_django_answers_everything(account, key, settings):
    settings.API_FAST_LANE = False
    lane, _ = clients(key)
    response = lane.post("/api/v1/consume", {"account": "acme", "feature": "api_call"},
                         format="json")  # fmt: skip
    assert response.status_code == 201 and not getattr(response, "from_fast_lane", False)


def test_an_error_after_the_charge_answers_500_and_never_charges_twice(account, key,
                                                                      monkeypatch):  # fmt: skip
    charge = fast_lane._consume

    def charge_then_fail(*args):
        charge(*args)
        raise RuntimeError("a bug after the commit")

    consume = fast_lane.LANES["/api/v1/consume"]
    monkeypatch.setitem(fast_lane.LANES, "/api/v1/consume", replace(consume, act=charge_then_fail))
    lane, _ = clients(key)
    response = lane.post("/api/v1/consume", {"account": "acme", "feature": "api_call"},
                         format="json", HTTP_X_REQUEST_ID="req-500")  # fmt: skip
    assert response.status_code == 500 and error_code(response) == "internal_error"
    assert response.json()["error"]["details"] == {"request_id": "req-500"}
    assert "Traceback" not in response.content.decode()
    assert UsageEvent.objects.count() == 1


@pytest.mark.parametrize("path", ["/api/v1/consume", "/api/v1/check"])
def test_a_consume_or_check_through_the_lane_is_one_statement_including_auth(account, key,
                                                                             path):  # fmt: skip
    lane, _ = clients(key)
    with CaptureQueriesContext(connection) as ctx:
        response = lane.post(path, {"account": "acme", "feature": "api_call"}, format="json")
    assert response.status_code in (200, 201) and response.from_fast_lane
    # (The test's own transaction adds savepoints around the consume; a server has none.)
    sql = [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(sql) == 1, sql


quantities = st.one_of(
    st.integers(-3, 10**20),
    st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=-5, max_value=10**9),
    st.text(alphabet="0123456789.-e+ ", max_size=12),
    st.booleans(),
    st.none(),
)
bodies = st.fixed_dictionaries(
    {"account": st.sampled_from(["acme", "nobody", "", "a" * 256])},
    optional={
        "feature": st.sampled_from(["api_call", "nope", "", 7]),
        "quantity": quantities,
        "extra": st.integers(),
    },
)


@hypothesis_settings(max_examples=60, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(body=bodies)
def test_any_check_body_gets_the_same_answer_from_the_lane_and_from_django(account, key, body):
    lane, django = clients(key)
    payload = json.dumps(body, default=str)
    answers = [c.post("/api/v1/check", payload, content_type="application/json")
               for c in (lane, django)]  # fmt: skip
    assert comparable(answers[0]) == comparable(answers[1]), body


ANSWER_VALUES = st.one_of(st.none(), st.integers(), st.text(), st.text(alphabet='a\u2028\u2029"\\'))


@given(output=st.dictionaries(st.text(), ANSWER_VALUES))
def test_the_lane_renders_an_answer_as_drfs_json_renderer(output):
    assert fast_lane._render(output) == JSONRenderer().render(output)
