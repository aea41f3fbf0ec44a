"""The response fields that replace DRF's with cheaper code give DRF's answers."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

import pytest
from django.utils import timezone as django_timezone
from hypothesis import given
from hypothesis import strategies as st
from rest_framework import serializers

from apps.api.fields import Timestamp
from apps.api.serializers import SignedCredits


def answer(field, value):
    try:
        return field.to_representation(value)
    except InvalidOperation:
        return "InvalidOperation"


@given(
    value=st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False),
        st.decimals(
            allow_nan=False, allow_infinity=False, places=9, min_value=-(10**19), max_value=10**19
        ),
        st.integers(-(10**20), 10**20),
    )
)
def test_signed_credits_render_as_drfs_decimal_field(value):
    drf = serializers.DecimalField(max_digits=24, decimal_places=6)
    assert answer(SignedCredits(), value) == answer(drf, value)


def test_signed_credits_round_half_to_even_and_keep_six_places():
    assert SignedCredits().to_representation(Decimal("2.0000005")) == "2.000000"
    assert SignedCredits().to_representation(Decimal("2.0000015")) == "2.000002"
    assert SignedCredits().to_representation(Decimal("-12")) == "-12.000000"


moments = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3)), None]),
)


@given(moment=moments)
def test_a_timestamp_renders_as_drfs_date_time_field_in_utc(moment):
    assert Timestamp().to_representation(moment) == serializers.DateTimeField().to_representation(
        moment
    )


def test_a_timestamp_stays_utc_whichever_zone_is_active():
    moment = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    with django_timezone.override("Europe/Paris"):
        assert Timestamp().to_representation(moment) == "2026-12-01T10:30:00Z"
        assert serializers.DateTimeField().to_representation(moment).endswith("+01:00")


@pytest.mark.parametrize("value", [Decimal("1E+30"), 10**25])
def test_a_value_past_24_digits_is_refused_as_drf_refuses_it(value):
    with pytest.raises(InvalidOperation):
        SignedCredits().to_representation(value)
