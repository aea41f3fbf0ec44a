"""schemathesis against /api/schema/: generated requests for every operation must never get a
server error, and every response must match the schema (status, headers, body)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.accounts.services import create_api_key
from config.wsgi import application
from tests.ledger import give, priced_account

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
# What the issue asks: no server error, every response as the schema says. (Schema-valid
# requests that break a business rule, such as an unknown plan code, are rightly refused.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
pytestmark = pytest.mark.django_db


@pytest.fixture
def in_test_transaction():
    """The WSGI app would close the database connection after each request, taking the
    test's transaction with it; Django's own test client keeps it open the same way."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def fuzz_key(in_test_transaction):
    account, _ = priced_account(external_id="acme")
    give(account, 1000)
    _, raw = create_api_key(
        name="fuzz",
        scopes=["usage:read", "usage:write", "accounts:write", "grants:write"],
        rate_limit_per_minute=10**6,
    )
    return raw


@schema.parametrize()
# Derandomized: the same examples every run, so CI is reproducible; wider random runs are
# done by hand (--hypothesis-seed, more examples) when the API changes.
@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_generated_requests_get_no_server_error_and_match_the_schema(case, fuzz_key):
    case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_key}"}, checks=CHECKS)
