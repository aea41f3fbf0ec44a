"""A plan's or credit pack's price is a whole number of its currency's smallest unit (cents;
whole yen): the revenue split and Stripe bill in those units, so 100.5 JPY or 12.345 USD is
refused wherever a price is entered — the admin's forms and import_catalog. (The API takes
no prices: its catalog is read-only, and the grants it makes are free.) A unit price per
credit, such as the overage unit price, may have more places."""

from decimal import Decimal

import pytest
from django.contrib import admin
from django.core.management import CommandError
from django.urls import reverse

from apps.catalog.models import CreditPack, Plan
from apps.core.currencies import price_problem
from tests.catalog.conftest import MINIMAL
from tests.commands import run, write
from tests.factories import CreditPackFactory, PlanFactory, UserFactory

pytestmark = pytest.mark.django_db
D = Decimal
JPY_HALF = "A price in JPY is a whole number (JPY has no smaller unit): 100.5 is not."
USD_MORE = (
    "A price in USD has at most 2 decimal places (its smallest unit is 0.01 USD): 12.345 has more."
)


@pytest.mark.parametrize(
    ("amount", "currency", "problem"),
    [
        ("12.00", "USD", None),
        ("1200", "JPY", None),
        ("1200.00", "jpy", None),  # the same number of yen, written with places
        ("100.5", "JPY", JPY_HALF),
        ("12.345", "USD", USD_MORE),
    ],
)
def test_a_price_is_a_whole_number_of_the_smallest_unit(amount, currency, problem):
    assert price_problem(D(amount), currency) == problem


# --- the admin ---------------------------------------------------------------------------


def pack_form(pack, **changes):
    return {
        "code": pack.code, "name": pack.name, "description": "",
        "credit_type": pack.credit_type_id, "credits": "1000", "price": "1000",
        "currency": "JPY", "expires_after_days": "", "public": "on", "active": "on", **changes,
    }  # fmt: skip


def test_the_pack_form_refuses_yen_with_a_fraction_and_takes_whole_yen(client):
    pack = CreditPackFactory(price=D("10.00"))
    client.force_login(UserFactory(groups=["Pricing"]))
    url = reverse("admin:catalog_creditpack_change", args=[pack.pk])

    refused = client.post(url, pack_form(pack, price="100.5"))
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["price"] == [JPY_HALF]
    pack.refresh_from_db()
    assert (pack.price, pack.currency) == (D("10.00"), "USD")

    cents = client.post(url, pack_form(pack, price="12.345", currency="USD"))
    assert cents.context["adminform"].form.errors["price"] == [
        "Ensure that there are no more than 2 decimal places."
    ]

    assert client.post(url, pack_form(pack, price="1000")).status_code == 302
    pack.refresh_from_db()
    assert (pack.price, pack.currency) == (D("1000"), "JPY")


def test_the_plan_form_refuses_yen_with_a_fraction_but_not_an_overage_unit_price(rf):
    plan = PlanFactory(price=D("29.00"))
    request = rf.post("/")
    request.user = UserFactory(groups=["Pricing"])
    form_class = admin.site._registry[Plan].get_form(request, plan, change=True)
    data = {
        "code": plan.code, "name": plan.name, "billing_interval": "month", "currency": "JPY",
        "rollover_percent": "0", "rollover_expires_after_periods": "1",
        "overage_policy": "allow", "overage_limit": "100", "platform_fee_value": "0",
        "overage_unit_price": "0.0125",  # a price per credit: places beyond the yen are fine
        "trial_days": "0",
    }  # fmt: skip
    form = form_class({**data, "price": "2900.5"}, instance=plan)
    assert not form.is_valid()
    assert form.errors == {"price": ["A price in JPY is a whole number (JPY has no smaller "
                                     "unit): 2900.5 is not."]}  # fmt: skip
    form = form_class({**data, "price": "2900"}, instance=plan)
    assert form.is_valid(), form.errors


# --- import_catalog ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (("price: 12}", "price: 100.5, currency: JPY}"),
         f"credit_packs[0] (pack_1k): price: {JPY_HALF}"),
        (("  price: 29\n", "  price: 2900.5\n  currency: JPY\n"),
         "plans[0] (starter): price: A price in JPY is a whole number (JPY has no smaller unit): "
         "2900.5 is not."),
    ],
)  # fmt: skip
def test_import_catalog_refuses_a_price_that_does_not_fit_its_currency(tmp_path, mutation, message):
    broken = MINIMAL.replace(*mutation)
    assert broken != MINIMAL
    with pytest.raises(CommandError) as excinfo:
        run("import_catalog", write(tmp_path, broken))
    assert message in str(excinfo.value) and "nothing was written" in str(excinfo.value)
    assert not Plan.objects.exists() and not CreditPack.objects.exists()


def test_import_catalog_takes_whole_yen_and_a_fine_overage_unit_price(tmp_path):
    overage = "  overage: {policy: allow, limit: 10, unit_price: 0.0125}\n"
    yen = MINIMAL.replace("price: 12}", "price: 1200, currency: JPY}").replace(
        "  price: 29\n", "  price: 2900\n  currency: JPY\n" + overage
    )
    run("import_catalog", write(tmp_path, yen))
    assert CreditPack.objects.get().price == D("1200")
    plan = Plan.objects.get()
    assert (plan.price, plan.currency, plan.overage_unit_price) == (D("2900"), "JPY", D("0.0125"))
