"""The API's JSON parser: numbers with a fraction stay exact, and whatever json.loads with
the same hooks accepts or refuses, it accepts or refuses too (it keeps one decoder and skips
the surrogate search when no escape is there, which must change no answer)."""

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.api.parsers import LONE_SURROGATE, parse_exact_json


def refuse(name):
    raise ValueError(name)


def json_loads(text):
    """What the parser answered before it kept its decoder: the surrogate search on every
    text, then json.loads with its hooks."""
    if LONE_SURROGATE.search(text):
        return "refused"
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=refuse)
    except ValueError:
        return "refused"


def parsed(body):
    try:
        return parse_exact_json(body)
    except ValueError:
        return "refused"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(value=json_values, ensure_ascii=st.booleans())
def test_a_json_document_parses_as_json_loads_with_exact_decimals(value, ensure_ascii):
    text = json.dumps(value, ensure_ascii=ensure_ascii)
    assert parsed(text.encode()) == json_loads(text)


TOKENS = ['{', '}', '[', ']', '"', ':', ',', '.', '0', '1', '9', 'e', '-', '+', ' ', 'x',
          'null', 'true', 'NaN', 'Infinity', '\ufeff', '\\', '\\u', '\\ud800', '\\udc00',
          '\\u0041', '\\ud83d\\ude00', '\u2028']  # fmt: skip


@given(text=st.lists(st.sampled_from(TOKENS), max_size=20).map("".join))
def test_any_text_is_accepted_or_refused_as_json_loads_does(text):
    assert parsed(text.encode()) == json_loads(text)


def test_a_fraction_stays_exact():
    assert parse_exact_json(b'{"q": 12345678901234567.5}') == {"q": Decimal("12345678901234567.5")}


@pytest.mark.parametrize(
    "body",
    [
        b'"\\ud800"',
        b'"\\udc00x"',
        b'["\\uDBFF"]',
        "\ufeff{}".encode(),
        b"NaN",
        b"[Infinity]",
        b"-Infinity",
        b"{}x",
    ],  # fmt: skip
)
def test_half_a_surrogate_pair_a_bom_and_non_numbers_are_refused(body):
    with pytest.raises(ValueError):
        parse_exact_json(body)


def test_a_whole_surrogate_pair_is_one_character():
    assert parse_exact_json(b'"\\ud83d\\ude00"') == "\U0001f600"
