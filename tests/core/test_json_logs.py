"""Logs (apps/core/logging.py): under production settings one JSON object a line, a traceback
one field of it; every line logged while a request is served, by Django or by the fast lane,
carries the request's id (the X-Request-ID its answer carries)."""

import io
import json
import logging
import subprocess
import sys
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import path

from apps.accounts.services import create_api_key
from apps.core.logging import JsonFormatter, RequestIdFilter
from tests.api.conftest import FastLaneClient
from tests.commands import BASE_ENV, PRODUCTION_ENV
from tests.ledger import priced_account

logger = logging.getLogger("creditdesk.test_json_logs")


def charge(request):
    logger.info("charging %s", "acme")
    return HttpResponse("ok")


def fail(request):
    raise ZeroDivisionError("the view divided by zero")


# This module is the URLconf of the tests marked `urls` below.
urlpatterns = [path("charge", charge), path("fail", fail)]


@contextmanager
def json_lines(name=""):
    """The lines logger `name` logs meanwhile, as the production settings format them."""
    stream, lines = io.StringIO(), []
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    target = logging.getLogger(name)
    # Whatever level another test left (a Celery worker started in process sets its own).
    level, target.level = target.level, logging.DEBUG
    target.addHandler(handler)
    try:
        yield lines
    finally:
        target.removeHandler(handler)
        target.setLevel(level)
        lines += [json.loads(line) for line in stream.getvalue().splitlines()]


def python(code, *, env):
    result = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stderr


LOG_TWO_RECORDS = """
import django, logging
django.setup()
log = logging.getLogger("creditdesk.probe")
log.warning("two\\nlines")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("it failed")
"""


def test_under_production_settings_every_line_is_one_json_object():
    lines = python(LOG_TWO_RECORDS, env=PRODUCTION_ENV).splitlines()
    records = [json.loads(line) for line in lines]  # every line, Django's own ones too
    ours = [r for r in records if r["logger"] == "creditdesk.probe"]
    assert [(r["level"], r["message"]) for r in ours] == [
        ("WARNING", "two\nlines"),
        ("ERROR", "it failed"),
    ]
    assert set(ours[0]) == {"time", "level", "logger", "message"}  # no request: no request id
    assert ours[0]["time"].endswith("+00:00")
    assert ours[1]["exception"].startswith("Traceback (most recent call last):")
    assert ours[1]["exception"].endswith("ZeroDivisionError: division by zero")


def test_celery_workers_log_json_under_production_settings_too():
    code = LOG_TWO_RECORDS.replace(
        "django.setup()", "django.setup()\nfrom config.celery import app\napp.log.setup()"
    )
    records = [json.loads(line) for line in python(code, env=PRODUCTION_ENV).splitlines()]
    assert [r["message"] for r in records if r["logger"] == "creditdesk.probe"] == [
        "two\nlines",
        "it failed",
    ]


def test_local_and_test_settings_log_plain_text_unless_told_otherwise():
    for module in ("config.settings.local", "config.settings.test"):
        env = {**BASE_ENV, "DJANGO_SETTINGS_MODULE": module}
        env.pop("LOG_FORMAT", None)
        last = python(LOG_TWO_RECORDS, env=env).splitlines()[-1]
        assert last == "ZeroDivisionError: division by zero", module  # a traceback's lines
        told = python(LOG_TWO_RECORDS, env={**env, "LOG_FORMAT": "json"}).splitlines()
        assert json.loads(told[-1])["message"] == "it failed", module
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=settings.BASE_DIR,
                            env={**env, "LOG_FORMAT": "xml"}, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode != 0
    assert 'LOG_FORMAT is "json" or "plain".' in result.stderr


@pytest.mark.urls(__name__)
def test_a_line_logged_during_a_request_carries_its_request_id(client):
    with json_lines() as lines:
        response = client.get("/charge", HTTP_X_REQUEST_ID="req-7f3a")
        logger.info("after the request")
    assert response["X-Request-ID"] == "req-7f3a"
    assert [(line["message"], line.get("request_id")) for line in lines] == [
        ("charging acme", "req-7f3a"),
        ("after the request", None),
    ]


@pytest.mark.urls(__name__)
def test_django_s_own_line_for_an_error_answer_carries_it_and_the_traceback_is_one_field():
    """Django logs a 4xx or 5xx answer after the middleware has returned it."""
    client = Client(raise_request_exception=False)
    with json_lines("django.request") as lines:
        missing = client.get("/nowhere")
        failed = client.get("/fail")
    assert (missing.status_code, failed.status_code) == (404, 500)
    [not_found, error] = lines
    assert not_found["message"] == "Not Found: /nowhere"
    assert not_found["request_id"] == missing["X-Request-ID"]
    assert error["message"] == "Internal Server Error: /fail"
    assert error["request_id"] == failed["X-Request-ID"]
    assert "ZeroDivisionError: the view divided by zero" in error["exception"]


@pytest.fixture
def sql_logged():
    """Django logs each SQL statement at DEBUG while queries are captured."""
    sql = logging.getLogger("django.db.backends")
    level = sql.level
    sql.setLevel(logging.DEBUG)
    try:
        with CaptureQueriesContext(connection):
            yield
    finally:
        sql.setLevel(level)


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.usefixtures("sql_logged")
def test_a_line_logged_in_the_fast_lane_carries_its_request_id():
    priced_account(credits=10, external_id="acme")
    _, key = create_api_key(name="logs", scopes=["usage:write"])
    lane = FastLaneClient()
    lane.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    with json_lines("django.db.backends") as lines:
        response = lane.post("/api/v1/consume", {"account": "acme", "feature": "api_call"},
                             format="json", HTTP_X_REQUEST_ID="lane-42")  # fmt: skip
    assert response.from_fast_lane
    assert lines  # the lane's one statement
    assert {line.get("request_id") for line in lines} == {"lane-42"}
    with json_lines() as after:
        logger.info("after the request")
    assert "request_id" not in after[0]
