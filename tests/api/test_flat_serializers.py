"""The fast lane validates and renders with the views' serializers flattened
(apps/api/flat_serializers.py): for any JSON object, the flat input accepts what the
serializer accepts, with the same values of the same types, and refuses what it refuses;
the flat output renders what the serializer renders."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from apps.accounts.models import Account
from apps.api.flat_serializers import FlatInput, FlatOutput
from apps.api.views.consumption import CheckView, ConsumeView
from apps.usage.outcomes import ChargedUsage
from apps.usage.selectors import CheckResult

VIEWS = [ConsumeView, CheckView]

texts = st.one_of(
    st.sampled_from(
        [
            "acme",
            "api_call",
            "a" * 64,
            "a" * 65,
            "b" * 255,
            "b" * 256,
            "",
            " acme",
            "acme ",
            "ac me",
            "ünïcode",
            "nul\x00",
            "k:1@x.y-z_",
        ]
    ),
    st.text(max_size=8),
)
numbers = st.one_of(
    st.integers(-3, 10**20),
    st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=-5, max_value=10**19),
    st.sampled_from([Decimal("1E+2"), Decimal("0.0000001"), Decimal("-0"), 0, 1]),
)
quantity_strings = st.sampled_from(
    [
        "1",
        "2.5",
        "0.000001",
        "0.0000001",
        "01",
        "1e3",
        " 1",
        "",
        "999999999999999999",
        "1000000000000000000",
        "-1",
        "1.",
    ]
)
date_times = st.sampled_from(
    [
        "2026-12-01T10:00:00Z",
        "2026-12-01T10:00:00.5+02:00",
        "2026-12-01",
        "2026-12-01 10:00:00Z",
        "2026-13-01T10:00:00Z",
        "",
    ]
)
metadata = st.one_of(
    st.dictionaries(
        st.text(max_size=4),
        st.one_of(
            st.integers(),
            st.text(max_size=4),
            st.decimals(allow_nan=False, allow_infinity=False, places=3),
            st.none(),
            st.booleans(),
        ),
        max_size=4,
    ),
    st.just({"big": "x" * 5000}),
)
values = st.one_of(
    texts,
    numbers,
    quantity_strings,
    date_times,
    metadata,
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
FIELDS = ["account", "feature", "quantity", "idempotency_key", "metadata", "occurred_at", "extra"]
bodies = st.dictionaries(st.sampled_from(FIELDS), values, max_size=len(FIELDS))
likely_bodies = st.fixed_dictionaries(
    {"account": st.sampled_from(["acme", "k:1@x.y-z_"]), "feature": st.just("api_call")},
    optional={
        "quantity": st.one_of(numbers, quantity_strings),
        "metadata": metadata,
        "idempotency_key": texts,
        "occurred_at": date_times,
    },
)


def validated(validate, body):
    try:
        return {name: (type(value), repr(value)) for name, value in validate(body).items()}
    except serializers.ValidationError:
        return "invalid"


@pytest.mark.parametrize("view", VIEWS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(bodies, likely_bodies))
def test_the_flat_input_takes_exactly_what_the_views_serializer_takes(view, body):
    serializer = view.input_serializer()
    expected = validated(serializer.run_validation, body)
    assert validated(FlatInput(serializer), body) == expected, body
    # Again with the values it has seen (over all examples) taken from its memo.
    assert validated(REMEMBERING[view], body) == expected, body
    assert validated(REMEMBERING[view], body) == expected, body


REMEMBERING = {view: FlatInput(view.input_serializer()) for view in VIEWS}


def test_the_memo_tells_a_number_from_its_string_and_from_true():
    flat = FlatInput(ConsumeView.input_serializer())
    body = {"account": "acme", "feature": "api_call"}
    assert flat({**body, "quantity": 1})["quantity"] == Decimal(1)
    assert flat({**body, "quantity": "1"})["quantity"] == Decimal(1)
    with pytest.raises(serializers.ValidationError):
        flat({**body, "quantity": True})
    with pytest.raises(serializers.ValidationError):
        flat({**body, "account": 1})


def test_the_memo_is_bounded():
    flat = FlatInput(CheckView.input_serializer())
    for n in range(FlatInput.MEMO_SIZE + 10):
        assert flat({"account": f"a{n}", "feature": "api_call"})["account"] == f"a{n}"
    memo_sizes = [len(memo) for _, _, memo, _ in flat.fields if memo is not None]
    assert memo_sizes and max(memo_sizes) <= FlatInput.MEMO_SIZE


@pytest.mark.parametrize("view", VIEWS)
def test_plain_bodies_are_valid_on_both(view):
    body = {"account": "acme", "feature": "api_call", "quantity": "2.5"}
    serializer = view.input_serializer()
    assert FlatInput(serializer)(body) == serializer.run_validation(body)
    assert FlatInput(serializer)(body)["quantity"] == Decimal("2.5")


@pytest.mark.parametrize("body", [[], "acme", None, 5])
def test_anything_but_an_object_is_refused(body):
    with pytest.raises(serializers.ValidationError):
        FlatInput(ConsumeView.input_serializer())(body)


credits = st.one_of(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**17), max_value=10**17
    ),
    st.sampled_from([Decimal("1E+2"), Decimal("-0"), Decimal("0.5")]),
)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)
charges = st.builds(
    ChargedUsage,
    pk=st.integers(1, 2**62),
    account=st.builds(Account, external_id=st.sampled_from(["acme", "k:1@x.y-z_"])),
    feature=st.text(min_size=1, max_size=64),
    credit_type=st.sampled_from(["credits", "gpu_seconds"]),
    quantity=credits,
    credits_per_unit=credits,
    credits=credits,
    balance_after=credits,
    available_after=credits,
    metadata=st.just({}),
    occurred_at=moments,
    created_at=moments,
    idempotency_key=st.none(),
)
checks = st.builds(
    CheckResult,
    allowed=st.booleans(),
    reason=st.one_of(st.none(), st.sampled_from(["insufficient_credits", "quota_exceeded"])),
    credits_required=st.one_of(st.none(), credits),
    credit_type=st.one_of(st.none(), st.just("credits")),
    available=st.one_of(st.none(), credits),
    details=st.just({}),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    result=st.one_of(
        st.tuples(st.just(ConsumeView), charges), st.tuples(st.just(CheckView), checks)
    )
)
def test_the_flat_output_renders_what_the_views_serializer_renders(result):
    view, instance = result
    serializer = view.output_serializer()
    assert FlatOutput(serializer)(instance) == serializer.to_representation(instance)


class WholeBody(serializers.Serializer):
    a = serializers.CharField()

    def validate(self, attrs):
        return attrs


class FieldMethod(serializers.Serializer):
    a = serializers.CharField()

    def validate_a(self, value):
        return value


class Nested(serializers.Serializer):
    a = WholeBody()


class Renamed(serializers.Serializer):
    a = serializers.CharField(source="b")


@pytest.mark.parametrize("serializer", [WholeBody, FieldMethod, Nested, Renamed])
def test_a_serializer_that_does_more_than_its_fields_cannot_be_flattened(serializer):
    with pytest.raises(TypeError):
        FlatInput(serializer())
