"""/healthz is liveness (the process and its database), /readyz readiness (the database; the
broker only as a warning): a Redis blip must not make a load balancer drop every node."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from config.celery import app

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker_down():
    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        yield
    finally:
        app.conf.broker_url = original


def test_healthz_is_liveness_the_process_and_its_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_stays_200_when_the_broker_is_down(client, broker_down):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "database": "ok"})


def test_readyz_reports_database_and_broker(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok", "warnings": []}
    assert "no-cache" in response["Cache-Control"]


def test_readyz_stays_200_with_a_warning_when_only_the_broker_is_down(client, broker_down):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "database": "ok",
        "broker": "unreachable",
        "warnings": ["broker unreachable: tasks wait in the outbox until it is back"],
    }


@pytest.mark.parametrize("url", ["/healthz", "/readyz"])
def test_both_answer_503_when_the_database_is_unreachable(url):
    probe = (
        f"from django.test import Client; r = Client().get({url!r}); print(r.status_code, r.json())"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nothing"}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", probe],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    status, _, body = result.stdout.strip().partition(" ")
    assert status == "503"
    assert "'database': 'unreachable'" in body and "'status': 'unavailable'" in body
