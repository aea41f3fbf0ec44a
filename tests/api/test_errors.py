"""Errors that are not a service's: unknown paths, bugs, request ids."""

import pytest

from .conftest import error_code

pytestmark = pytest.mark.django_db


def test_an_unknown_api_path_answers_in_the_error_format(authed_client):
    response = authed_client.get("/api/v1/nothing-here")
    assert (response.status_code, error_code(response)) == (404, "not_found")


def test_every_response_carries_a_request_id_and_echoes_a_sane_one(authed_client):
    assert len(authed_client.get("/api/v1/plans").headers["X-Request-ID"]) == 32
    echoed = authed_client.get("/api/v1/plans", HTTP_X_REQUEST_ID="trace-42")
    assert echoed.headers["X-Request-ID"] == "trace-42"
    replaced = authed_client.get("/api/v1/plans", HTTP_X_REQUEST_ID="bad id\n")
    assert replaced.headers["X-Request-ID"] != "bad id\n"


def test_a_bug_answers_500_with_the_request_id_and_no_traceback(authed_client, monkeypatch,
                                                                caplog):  # fmt: skip
    from apps.catalog import selectors

    def broken():
        raise RuntimeError("secret internals")

    monkeypatch.setattr(selectors, "public_plans", broken)
    response = authed_client.get("/api/v1/plans", HTTP_X_REQUEST_ID="req-1")
    assert (response.status_code, error_code(response)) == (500, "internal_error")
    assert response.json()["error"]["details"] == {"request_id": "req-1"}
    assert "secret internals" not in response.content.decode()
    assert "req-1" in caplog.text and "secret internals" in caplog.text
