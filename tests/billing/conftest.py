"""The billing tests' fixtures around the offline Stripe (tests/conftest.py serves it; the
customer's and the world's moves there are in tests/stripe_helpers.py): its held events
(`stripe_events`) are delivered through dj-stripe's real webhook view, signed as Stripe signs
them, in the order and as often as each test wants."""

from datetime import UTC, datetime

import pytest

from apps.billing.catalog_sync import sync_stripe_catalog
from apps.billing.gateway import connect_stripe_webhook
from tests.factories import AccountFactory, CreditPackFactory, CreditTypeFactory
from tests.stripe_helpers import signed


@pytest.fixture
def webhook(db, offline_stripe, client):
    """Delivers events to dj-stripe's endpoint the way Stripe does."""
    endpoint, _ = connect_stripe_webhook(base_url="http://testserver")

    class Webhook:
        url = f"/stripe/webhook/{endpoint.djstripe_uuid}/"
        secret = endpoint.secret

        def post(self, event, *, secret=None, timestamp=None):
            body, signature = signed(event, secret or self.secret, timestamp)
            return client.post(
                self.url,
                data=body,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=signature,
            )

        def deliver(self, events):
            for event in events:
                response = self.post(event)
                assert response.status_code == 200, (event["type"], response.content)

    return Webhook()


@pytest.fixture
def pack(db, offline_stripe):
    pack = CreditPackFactory(
        code="pack_1000", credits=1000, price="10.00", credit_type=CreditTypeFactory(code="credits")
    )
    sync_stripe_catalog()
    pack.refresh_from_db()
    return pack


@pytest.fixture
def account(db):
    return AccountFactory(external_id="acme")


# --- shared by the billing tests -----------------------------------------------------------

JAN_31 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
FEB_28 = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
MAR_31 = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
