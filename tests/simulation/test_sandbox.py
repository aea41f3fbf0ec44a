"""A draft catalog seen by the simulator alone (apps/simulation/sandbox.py): the same terms
function reads it, nothing live changes, and it is gone when the simulator is done."""

from decimal import Decimal as D

import pytest
from django.db import transaction

from apps.accounts.models import Subscription
from apps.catalog.models import Feature, Plan
from apps.catalog.pricebook import read_document
from apps.catalog.services import import_catalog
from apps.periods.services import put_account_on_plan
from apps.simulation.sandbox import draft_catalog
from apps.usage.selectors import terms_for
from tests.checksums import live_checksums
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db


def catalog(*, cost="0.5", default="1", credits="2000"):
    return read_document(
        f"""
version: 1
credit_types:
- {{code: credits, name: Credits}}
features:
- {{code: api_call, name: API call, credit_type: credits, credits_per_unit: "{default}"}}
plans:
- code: starter
  name: Starter
  price: 29
  included_credits: {{credits: {credits}}}
  features:
  - {{feature: api_call, credits_per_unit: "{cost}"}}
""",
        filename="catalog.yaml",
    )


@pytest.fixture
def live():
    import_catalog(raw=catalog())
    subscriber = AccountFactory(external_id="subscriber")
    put_account_on_plan(account=subscriber, plan=Plan.objects.get(code="starter"))
    return subscriber, AccountFactory(external_id="no-plan")


def cost(account):
    (terms,) = terms_for(pairs={(account.pk, "api_call")}).values()
    return terms.credits_per_unit


def test_inside_a_draft_the_terms_function_reads_the_draft_and_subscribers_are_on_it(live):
    subscriber, no_plan = live
    with draft_catalog(raw=catalog(cost="0.8", default="2", credits="1000")) as result:
        # The subscriber's version is in use: the draft publishes version 2, and the
        # simulator puts its subscribers on it.
        assert [c.publishes for c in result.changes if c.section == "plans"] == [2]
        assert (cost(subscriber), cost(no_plan)) == (D("0.8"), D("2"))
        assert Subscription.objects.get(account=subscriber).plan.version == 2
    assert (cost(subscriber), cost(no_plan)) == (D("0.5"), D("1"))


def test_a_draft_writes_nothing_live_and_leaves_nothing_behind(live):
    before = live_checksums()
    with draft_catalog(raw=catalog(cost="0.8", default="2")):
        assert Feature.objects.get(code="api_call").credits_per_unit == D("2")
    assert live_checksums() == before
    assert Plan.objects.filter(code="starter").count() == 1
    # Leaving by an exception rolls back as well, and the connection goes on working.
    with pytest.raises(RuntimeError), draft_catalog(raw=catalog(cost="3")):
        raise RuntimeError("the simulation failed")
    assert live_checksums() == before
    assert cost(live[0]) == D("0.5")


def test_a_draft_needs_its_own_transaction(live):
    """It always rolls back: inside a caller's transaction it would undo the caller's work."""
    with (
        transaction.atomic(),
        pytest.raises(RuntimeError, match="durable"),
        draft_catalog(raw=catalog()),
    ):
        pass


def test_a_plan_the_draft_leaves_alone_keeps_its_grandfathered_subscribers(live):
    subscriber, _ = live
    import_catalog(raw=catalog(cost="0.6"))  # publishes v2; the subscriber stays on v1
    with draft_catalog(raw=catalog(cost="0.6")) as result:
        assert result.changes == []
        assert Subscription.objects.get(account=subscriber).plan.version == 1
        assert cost(subscriber) == D("0.5")
