"""The database itself refuses a broken price book, whatever wrote it."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from apps.catalog.models import CreditPack, Feature, Plan
from tests.factories import CreditPackFactory, CreditTypeFactory, FeatureFactory, PlanFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("factory", "field", "value"),
    [
        (PlanFactory, "price", Decimal("-1")),
        (PlanFactory, "overage_unit_price", Decimal("-0.0000000001")),
        (PlanFactory, "rollover_percent", Decimal("100.01")),
        (PlanFactory, "rollover_cap", Decimal("-1")),
        (CreditPackFactory, "price", Decimal("-0.01")),
        (CreditPackFactory, "credits", Decimal("0")),
        (FeatureFactory, "credits_per_unit", Decimal("-0.000001")),
    ],
)
def test_database_rejects_negative_amounts(factory, field, value):
    with pytest.raises(IntegrityError):
        factory(**{field: value})


def test_codes_are_unique():
    PlanFactory(code="pro")
    with pytest.raises(IntegrityError):
        PlanFactory(code="pro")


def test_metered_feature_needs_a_credit_type_in_the_database():
    with pytest.raises(IntegrityError):
        Feature.objects.create(code="x", name="X", kind="metered", credit_type=None)


def test_boolean_feature_needs_no_credit_type():
    assert Feature.objects.create(code="sso", name="SSO", kind="boolean").pk


def test_overage_limit_without_allow_policy_is_rejected():
    with pytest.raises(IntegrityError):
        PlanFactory(overage_policy=Plan.OveragePolicy.BLOCK, overage_limit=Decimal("10"))


def test_model_validation_rejects_seven_decimal_places():
    pack = CreditPack(
        code="p", name="P", credit_type=CreditTypeFactory(), credits=Decimal("1.0000001"), price=1
    )
    with pytest.raises(ValidationError) as excinfo:
        pack.full_clean()
    assert "credits" in excinfo.value.message_dict


def test_code_must_be_lowercase_slug():
    plan = Plan(code="Pro Plan", name="Pro", price=1)
    with pytest.raises(ValidationError) as excinfo:
        plan.full_clean()
    assert "code" in excinfo.value.message_dict
