"""Schemathesis against /api/schema/ with every check on, as configured in schemathesis.toml
(the same file `st run` reads by hand): valid and invalid generated requests for every
operation, then stateful scenarios along the schema's OpenAPI links. The schema must say
exactly what the server does: no server error, every response as documented, every
schema-valid request accepted (or refused only for a business rule with a documented status:
402, 403, 404, 409) and every schema-violating request refused."""

import pytest
import schemathesis
import stripe
from django.conf import settings
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.pytest._test_builder import build_operation_test

from apps.accounts.services import create_api_key
from apps.billing.catalog_sync import sync_stripe_catalog
from config.wsgi import application
from devtools.offline_stripe.server import serve
from devtools.offline_stripe.stand_in import OfflineStripe
from tests.api.conftest import API_OPERATIONS
from tests.factories import CreditPackFactory
from tests.ledger import give, priced_account

CONFIG = SchemathesisConfig.from_path(settings.BASE_DIR / "schemathesis.toml")
# Examples per operation and mode, and stateful scenarios: enough to meet every field's edge
# cases with the fixed seed, within the suite's time budget.
MAX_EXAMPLES = 12
SCENARIOS = 25
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


@pytest.fixture(scope="module")
def stripe_stand_in():
    """The offline Stripe: checkouts of the catalog's packs and plans really start."""
    server = serve(OfflineStripe(deliver=lambda event: None))
    yield server
    server.shutdown()


@pytest.fixture
def fuzz_key(in_test_transaction, stripe_stand_in, monkeypatch):
    """An account on a plan with credits, a pack, both synced to Stripe (so the schema's
    catalog codes are ones a checkout takes), and a service key with every scope."""
    monkeypatch.setattr(stripe, "api_base", stripe_stand_in.url)
    account, feature = priced_account(external_id="acme", plan=True)
    CreditPackFactory(credit_type=feature.credit_type)
    sync_stripe_catalog()
    give(account, 1000)
    _, raw = create_api_key(
        name="fuzz",
        scopes=["usage:read", "usage:write", "accounts:write", "grants:write", "webhooks:write"],
        rate_limit_per_minute=10**6,
    )
    return raw


@pytest.fixture
def api_schema(fuzz_key):
    """Loaded per test: the schema lists the catalog's codes, so it needs the test's data."""
    loaded = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application, config=CONFIG)
    loaded.config.update(headers={"Authorization": f"Bearer {fuzz_key}"})
    loaded.config.generation.update(max_examples=MAX_EXAMPLES)
    return loaded


def _call_and_validate(case):
    case.call_and_validate()


@pytest.mark.parametrize(("path", "method"), sorted(API_OPERATIONS))
def test_generated_requests_get_exactly_the_answers_the_schema_documents(api_schema, path,
                                                                          method):  # fmt: skip
    """Examples, coverage (each field's edges) and fuzzing, valid and invalid data."""
    # What `@schema.parametrize()` builds per operation; its lazy form (a schema from a
    # fixture, needed here) does not run on pytest 9.
    run = build_operation_test(
        config=api_schema.config,
        operation=api_schema[path][method],
        test_func=_call_and_validate,
        given_kwargs={},
        feedback=FeedbackSources(),
    )
    hypothesis_settings(deadline=None, suppress_health_check=list(HealthCheck))(run)()


def test_stateful_scenarios_along_the_schema_links_match_the_schema(api_schema):
    """Reservations are committed, released and read with ids the API returned; accounts
    created by PUT are read back, charged and granted."""
    links = api_schema.raw_schema["paths"]["/api/v1/reservations"]["post"]["responses"]["201"]
    assert set(links.get("links", {})) == {
        "GetReservation", "CommitReservation", "ReleaseReservation",
    }  # fmt: skip
    machine = api_schema.as_state_machine()
    machine.run(
        settings=hypothesis_settings(
            max_examples=SCENARIOS,
            stateful_step_count=6,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )
