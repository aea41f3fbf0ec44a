"""Numbers as staff read them (apps/core/humanize.py)."""

from decimal import Decimal

import pytest

from apps.core.humanize import credits, credits_per, group_digits, money, unit_price


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("10000.000000"), "10,000 credits"),
        (Decimal("1.000000"), "1 credit"),
        (Decimal("-1"), "-1 credit"),
        (Decimal("2.500000"), "2.5 credits"),
        (Decimal("-1234567.000001"), "-1,234,567.000001 credits"),
        (None, "—"),
    ],
)
def test_credits(value, text):
    assert credits(value) == text


def test_money_and_grouping():
    assert money(Decimal("1200"), "EUR") == "1,200.00 EUR"
    assert money(Decimal("-0.5"), "USD") == "-0.50 USD"
    assert group_digits(Decimal("10000.500000")) == "10,000.5"


@pytest.mark.parametrize(
    ("value", "currency", "text"),
    [
        (Decimal("0.0125000000"), "USD", "0.0125 USD / credit"),
        (Decimal("1.0000000000"), "USD", "1.00 USD / credit"),
        (Decimal("1500.5"), "EUR", "1,500.50 EUR / credit"),
        (Decimal("0.5"), "", "0.50 / credit"),
        (None, "USD", "—"),
    ],
)
def test_unit_price_keeps_every_place_it_has(value, currency, text):
    assert unit_price(value, currency) == text


def test_credits_per_unit():
    assert credits_per(Decimal("2.500000"), "call") == "2.5 credits / call"
    assert credits_per(Decimal("1"), "page") == "1 credit / page"
    assert credits_per(None, "page") == "—"
