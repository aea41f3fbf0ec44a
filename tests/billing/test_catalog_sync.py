"""Catalog sync: every active plan gets a Stripe Product and a recurring Price, every pack a
one-time Price, mirrored by dj-stripe and stored on the item; a second sync changes nothing;
a new price replaces the old (Stripe prices are immutable) and archives it."""

from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from djstripe import models as djstripe
from prometheus_client import REGISTRY

from apps.billing.catalog_sync import sync_stripe_catalog
from apps.catalog.models import CreditPack, Plan
from tests.factories import CreditPackFactory, PlanFactory

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def catalog(db, offline_stripe):
    plan = PlanFactory(code="pro", name="Pro", price=D("29.00"), billing_interval="month")
    pack = CreditPackFactory(code="pack_500", name="500 credits", price=D("5.00"))
    return plan, pack


def test_sync_gives_each_item_a_product_and_a_price_of_the_right_kind(catalog, offline_stripe):
    plan, pack = catalog
    report = sync_stripe_catalog()

    assert sorted(report.created) == ["pack pack_500", "plan pro"]
    plan.refresh_from_db()
    pack.refresh_from_db()
    plan_price = offline_stripe.get("price", plan.stripe_price_id)
    pack_price = offline_stripe.get("price", pack.stripe_price_id)
    assert (plan_price["unit_amount"], plan_price["currency"]) == (2900, "usd")
    assert plan_price["recurring"]["interval"] == "month"
    assert (pack_price["unit_amount"], pack_price["recurring"]) == (500, None)
    assert plan_price["product"] == "creditdesk_plan_pro"
    assert offline_stripe.get("product", "creditdesk_pack_pack_500")["name"] == "500 credits"
    assert djstripe.Price.objects.filter(id__in=[plan_price["id"], pack_price["id"]]).count() == 2


def test_a_product_not_yet_at_stripe_is_created_without_counting_a_failed_call(
    catalog, offline_stripe
):
    """Sync asks Stripe for each product first: "no such product" is the expected answer the
    first time, not a failure for the metrics (a declined card or an outage is)."""
    before = failed_retrieves()
    sync_stripe_catalog()
    assert offline_stripe.all("product")  # created
    assert failed_retrieves() == before


def failed_retrieves():
    labels = {"operation": "Product.retrieve", "error": "InvalidRequestError"}
    return REGISTRY.get_sample_value("creditdesk_stripe_errors_total", labels) or 0


def test_a_second_sync_changes_nothing(catalog, offline_stripe):
    sync_stripe_catalog()
    prices = set(offline_stripe.all("price"))
    report = sync_stripe_catalog()
    assert (report.created, report.repriced, report.archived) == ([], [], [])
    assert sorted(report.unchanged) == ["pack pack_500", "plan pro"]
    assert set(offline_stripe.all("price")) == prices


def test_a_new_price_replaces_the_old_which_is_archived(catalog, offline_stripe):
    plan, _ = catalog
    sync_stripe_catalog()
    plan.refresh_from_db()
    old = plan.stripe_price_id
    Plan.objects.filter(pk=plan.pk).update(price=D("39.00"), name="Pro 2027")

    report = sync_stripe_catalog()

    assert report.repriced == ["plan pro"]
    plan.refresh_from_db()
    assert plan.stripe_price_id != old
    assert offline_stripe.get("price", plan.stripe_price_id)["unit_amount"] == 3900
    assert offline_stripe.get("price", old)["active"] is False
    assert djstripe.Price.objects.get(id=old).stripe_data["active"] is False
    assert offline_stripe.get("product", "creditdesk_plan_pro")["name"] == "Pro 2027"


def test_an_inactive_item_has_its_price_archived(catalog, offline_stripe):
    _, pack = catalog
    sync_stripe_catalog()
    CreditPack.objects.filter(pk=pack.pk).update(active=False)
    report = sync_stripe_catalog()
    pack.refresh_from_db()
    assert report.archived == ["pack pack_500"]
    assert offline_stripe.get("price", pack.stripe_price_id)["active"] is False


def test_the_command_reports_what_it_did(catalog):
    out = StringIO()
    call_command("sync_stripe_catalog", stdout=out)
    assert "created: plan pro" in out.getvalue() and "2 created" in out.getvalue()


def test_pricing_staff_sync_from_the_admin(client, catalog):
    plan, _ = catalog
    client.force_login(get_user_model().objects.create_superuser("root", "r@x.io", "pw"))
    answer = client.post(
        "/admin/catalog/plan/",
        {"action": "sync_to_stripe", "_selected_action": [plan.pk]},
        follow=True,
    )
    assert "Stripe: 1 created" in answer.content.decode()
    plan.refresh_from_db()
    assert plan.stripe_price_id
    assert plan.stripe_price_id in client.get("/admin/catalog/plan/").content.decode()
