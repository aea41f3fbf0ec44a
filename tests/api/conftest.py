import re

import pytest
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import request_started
from django.db import close_old_connections
from django.http import HttpResponse
from rest_framework.test import APIClient

from apps.accounts.services import create_api_key
from apps.api.fast_lane import answer_request


class FastLaneClient(APIClient):
    """An APIClient whose requests pass the fast lane first, as they do under gunicorn
    (config/wsgi.py); what the lane hands on goes through Django's stack as usual."""

    def __init__(self, **defaults):
        super().__init__(**defaults)
        self.handler = _ThroughFastLane(self.handler)


class _ThroughFastLane:
    def __init__(self, django_handler):
        self.django_handler = django_handler

    def __call__(self, environ):
        # As Django's test handler does: never close the connection a test's transaction is on.
        request_started.disconnect(close_old_connections)
        try:
            answer = answer_request(environ)
        finally:
            request_started.connect(close_old_connections)
        if answer is None:
            return self.django_handler(environ)
        status, headers, body = answer
        response = HttpResponse(body, status=int(status.split()[0]))
        for name, value in headers:
            response[name] = value
        response.wsgi_request = WSGIRequest(environ)
        response.from_fast_lane = True
        return response


@pytest.fixture(params=["django", "fast lane"])
def api_client(request):
    """Every API test runs twice: straight into Django, and through the fast lane in front of
    it. The lane answers some consumes and checks itself; the answers must not differ."""
    return FastLaneClient() if request.param == "fast lane" else APIClient()


@pytest.fixture
def client_with(api_client):
    """An API client whose key has exactly `scopes` (and is bound to `account`, if given)."""

    def make(*scopes, account=None):
        _, raw = create_api_key(name="test", scopes=list(scopes), account=account)
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return api_client

    return make


def error_code(response):
    return response.json()["error"]["code"]


# An asset loaded from another host (a CDN): the docs must work offline.
EXTERNAL_ASSET = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", re.IGNORECASE)


# Every operation of the API, as (path, method): the schema must have exactly these.
API_OPERATIONS = {
    ("/api/v1/accounts/{external_id}", "put"), ("/api/v1/accounts/{external_id}", "get"),
    ("/api/v1/accounts/{external_id}/balance", "get"),
    ("/api/v1/accounts/{external_id}/entitlements", "get"),
    ("/api/v1/accounts/{external_id}/ledger", "get"),
    ("/api/v1/accounts/{external_id}/usage", "get"),
    ("/api/v1/check", "post"), ("/api/v1/consume", "post"), ("/api/v1/consume/batch", "post"),
    ("/api/v1/reservations", "post"), ("/api/v1/reservations/{reservation_id}", "get"),
    ("/api/v1/reservations/{reservation_id}/commit", "post"),
    ("/api/v1/reservations/{reservation_id}/release", "post"),
    ("/api/v1/accounts/{external_id}/grants", "post"),
    ("/api/v1/plans", "get"), ("/api/v1/credit-packs", "get"), ("/api/v1/features", "get"),
    ("/api/v1/accounts/{external_id}/checkout", "post"),
    ("/api/v1/accounts/{external_id}/billing-link", "post"),
    ("/api/v1/accounts/{external_id}/contract", "get"),
    ("/api/v1/accounts/{external_id}/contract", "put"),
    ("/api/v1/accounts/{external_id}/contract", "delete"),
    ("/api/v1/webhook-endpoints", "get"), ("/api/v1/webhook-endpoints", "post"),
    ("/api/v1/webhook-endpoints/{endpoint_id}", "get"),
    ("/api/v1/webhook-endpoints/{endpoint_id}", "delete"),
    ("/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret", "post"),
}  # fmt: skip
