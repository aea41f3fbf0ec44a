"""The split of a plan's price over its credit types and platform fee (apps/catalog/pricing.py,
docs/revenue.md "Plan periods: allocating the price")."""

from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core.management import CommandError
from hypothesis import given
from hypothesis import strategies as st

from apps.catalog.models import Plan
from apps.catalog.pricing import price_split, split_problems
from tests.commands import run, write
from tests.factories import CreditTypeFactory, UserFactory

D = Decimal


def plan(price, fee="0", currency="USD"):
    return SimpleNamespace(code="p", price=D(price), platform_fee_value=D(fee), currency=currency)


def allowance(credits, value=None, code="credits"):
    return SimpleNamespace(
        credit_type_id=code,
        credits_per_period=D(credits),
        standalone_value=None if value is None else D(value),
    )


def test_one_credit_type_without_a_fee_takes_the_whole_price():
    assert price_split(plan=plan("29.00"), allowances=[allowance(2000)]) == ([D("29.00")], 0)


def test_several_credit_types_without_values_split_by_credits():
    split = price_split(plan=plan("99.00"), allowances=[allowance(10000), allowance(1000)])
    assert split == ([D("90.00"), D("9.00")], 0)


def test_standalone_values_split_the_price_and_the_fee_takes_its_part():
    allowances = [allowance(10000, "80.00"), allowance(120, "30.00", "gpu")]
    split = price_split(plan=plan("99.00", fee="10.00"), allowances=allowances)
    assert split == ([D("66.00"), D("24.75")], D("8.25"))


def test_standalone_values_not_credits_decide_the_split():
    allowances = [allowance(1, "10"), allowance(1000, "30", "gpu")]
    assert price_split(plan=plan("40.00"), allowances=allowances) == ([D("10.00"), D("30.00")], 0)


def test_a_three_way_split_of_ten_dollars_goes_to_the_cent_and_adds_up():
    allowances = [allowance(1, "1", "a"), allowance(1, "1", "b")]
    split = price_split(plan=plan("10.00", fee="1"), allowances=allowances)
    assert split == ([D("3.34"), D("3.33")], D("3.33"))


def test_yen_split_to_whole_yen():
    allowances = [allowance(1, "1", "a"), allowance(1, "1", "b"), allowance(1, "1", "c")]
    bases, fee = price_split(plan=plan("1000", currency="JPY"), allowances=allowances)
    assert (bases, fee) == ([D(334), D(333), D(333)], 0)


def test_a_credit_type_of_zero_credits_takes_no_part():
    split = price_split(plan=plan("30.00"), allowances=[allowance(0), allowance(5, code="b")])
    assert split == ([0, D("30.00")], 0)


def test_a_plan_without_credits_puts_its_price_in_the_fee():
    assert price_split(plan=plan("15.00"), allowances=[]) == ([], D("15.00"))


@given(
    price=st.decimals(min_value=0, max_value=10**6, places=2),
    values=st.lists(st.decimals(min_value=0, max_value=10**4, places=2), min_size=1, max_size=5),
    fee=st.decimals(min_value=0, max_value=10**4, places=2),
)
def test_the_parts_always_add_up_to_the_price(price, values, fee):
    allowances = [allowance(1, v, str(i)) for i, v in enumerate(values)]
    if split_problems(fee_value=fee, allowances=allowances):
        return
    bases, fee_part = price_split(plan=plan(price, fee=fee), allowances=allowances)
    assert sum(bases) + fee_part == price
    assert all(part >= 0 and part == part.quantize(D("0.01")) for part in [*bases, fee_part])


@pytest.mark.parametrize(
    ("fee", "allowances", "problem"),
    [
        ("0", [allowance(1, "5", "a"), allowance(1, None, "b")], "missing for b"),
        ("10", [allowance(1, None, "a")], "A platform fee needs a standalone value"),
        ("0", [allowance(1, "0", "a"), allowance(2, "0", "b")], "add up to 0"),
    ],
)
def test_values_on_some_credit_types_or_a_fee_without_values_are_refused(fee, allowances, problem):
    [message] = split_problems(fee_value=D(fee), allowances=allowances)
    assert problem in message
    with pytest.raises(ValueError, match="Plan p"):
        price_split(plan=plan("10", fee=fee), allowances=allowances)


# --- the catalog file and the admin carry the values ---------------------------------------

VALUED = """
version: 1
credit_types:
- {code: credits, name: Credits}
- {code: gpu, name: GPU minutes}
plans:
- code: pro
  name: Pro
  price: 99
  included_credits: {credits: 10000, gpu: 120}
  standalone_values: {credits: 80, gpu: "30.00"}
  platform_fee_value: 10
"""


@pytest.mark.django_db
def test_import_and_export_carry_standalone_values_and_the_fee(tmp_path):
    run("import_catalog", write(tmp_path, VALUED))
    pro = Plan.objects.get(code="pro")
    assert pro.platform_fee_value == D("10.00")
    values = {a.credit_type.code: a.standalone_value for a in pro.allowances.all()}
    assert values == {"credits": D("80.00"), "gpu": D("30.00")}
    exported = run("export_catalog")
    assert "  standalone_values:\n    credits: '80.00'\n    gpu: '30.00'\n" in exported
    assert "  platform_fee_value: '10.00'\n" in exported
    assert "0 created, 0 updated, 3 unchanged." in run("import_catalog", write(tmp_path, exported))


@pytest.mark.django_db
def test_import_refuses_values_on_some_credit_types_and_names_them(tmp_path):
    text = VALUED.replace('{credits: 80, gpu: "30.00"}', "{credits: 80}")
    with pytest.raises(CommandError) as error:
        run("import_catalog", write(tmp_path, text))
    assert "plans[0] (pro): standalone_values: Give a standalone value" in str(error.value)
    assert "missing for gpu" in str(error.value)
    assert not Plan.objects.exists()


@pytest.mark.django_db
def test_import_refuses_a_fee_without_values_and_a_value_for_credits_not_included(tmp_path):
    text = VALUED.replace('  standalone_values: {credits: 80, gpu: "30.00"}\n', "")
    with pytest.raises(CommandError, match="A platform fee needs a standalone value"):
        run("import_catalog", write(tmp_path, text))
    text = VALUED.replace('gpu: "30.00"}', "gpu: 30, tokens: 1}")
    with pytest.raises(CommandError, match="standalone_values.tokens: 'tokens' is not in"):
        run("import_catalog", write(tmp_path, text))


def plan_form(credits_type, gpu_type, *, fee="0", values=("", "")):
    form = {
        "code": "pro", "name": "Pro", "description": "", "public": "on", "active": "on",
        "billing_interval": "month", "price": "99.00", "currency": "USD",
        "platform_fee_value": fee, "rollover_percent": "0", "rollover_cap": "",
        "rollover_expires_after_periods": "1", "overage_policy": "block", "overage_limit": "0",
        "overage_unit_price": "0", "trial_days": "0",
        "allowances-TOTAL_FORMS": "2", "allowances-INITIAL_FORMS": "0",
        "plan_features-TOTAL_FORMS": "0", "plan_features-INITIAL_FORMS": "0",
    }  # fmt: skip
    for i, (credit_type, value) in enumerate(zip((credits_type, gpu_type), values, strict=True)):
        form[f"allowances-{i}-credit_type"] = credit_type.pk
        form[f"allowances-{i}-credits_per_period"] = "100"
        form[f"allowances-{i}-standalone_value"] = value
        form[f"allowances-{i}-trial_credits"] = "0"
    return form


@pytest.mark.django_db
def test_the_plan_admin_refuses_values_on_some_credit_types_and_saves_them_on_all(client):

    credits, gpu = CreditTypeFactory(), CreditTypeFactory(code="gpu", name="GPU")
    client.force_login(UserFactory(groups=["Pricing"]))
    url = "/admin/catalog/plan/add/"
    response = client.post(url, plan_form(credits, gpu, values=("80", "")))
    assert response.status_code == 200
    assert "missing for gpu" in response.content.decode()
    response = client.post(url, plan_form(credits, gpu, fee="10", values=("", "")))
    assert "A platform fee needs a standalone value" in response.content.decode()
    assert not Plan.objects.exists()
    response = client.post(url, plan_form(credits, gpu, fee="10", values=("80", "30")))
    assert response.status_code == 302
    pro = Plan.objects.get(code="pro")
    assert pro.platform_fee_value == D("10.00")
    assert sorted(a.standalone_value for a in pro.allowances.all()) == [D("30.00"), D("80.00")]


def test_a_credit_type_without_a_value_on_a_plan_with_a_fee_fails_its_model_clean():
    from django.core.exceptions import ValidationError

    from apps.catalog.models import PlanAllowance

    fee_plan = Plan(code="p", price=D("10"), platform_fee_value=D("1"))
    row = PlanAllowance(plan=fee_plan, credits_per_period=D(5))
    with pytest.raises(ValidationError, match="A platform fee needs a standalone value"):
        row.clean()
    row.standalone_value = D("4")
    row.clean()
    PlanAllowance(plan=Plan(code="q", price=D("10")), credits_per_period=D(5)).clean()
