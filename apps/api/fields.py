"""Input fields with API.md's rules: exact decimals, external ids, small JSON metadata."""

import json
from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.accounts.models import EXTERNAL_ID_PATTERN
from apps.core.decimals import CREDIT_DIGITS, CREDIT_PLACES, DecimalInputError, parse_decimal

METADATA_MAX_BYTES = 4096
SIX_PLACES = Decimal(1).scaleb(-CREDIT_PLACES)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,6})?$", "example": "12.5"},
            {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        ],
        "description": "A decimal string (responses always use strings) or a JSON number.",
    }
)
class CreditsField(serializers.Field):
    """A credit amount or quantity: a decimal string or JSON number, > 0, at most 6 places.
    Booleans, empty strings, NaN, Infinity and overflowing exponents are refused."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "Decimal string or number, > 0, at most 6 places.")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            value = parse_decimal(data, places=CREDIT_PLACES, digits=CREDIT_DIGITS)
        except DecimalInputError as exc:
            raise serializers.ValidationError(str(exc)) from None
        if value <= 0:
            raise serializers.ValidationError("must be greater than zero")
        return value

    def to_representation(self, value):
        return format_credits(value)


def format_credits(value):
    """A credit amount as responses give it: a decimal string with 6 places."""
    return format(Decimal(value).quantize(SIX_PLACES), "f")


class ExternalIdField(serializers.RegexField):
    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "The app's own id: 1-255 letters, digits, _ - . : @")
        super().__init__(EXTERNAL_ID_PATTERN, max_length=255, **kwargs)


@extend_schema_field({"type": "object", "additionalProperties": True, "maxProperties": 256})
class MetadataField(serializers.JSONField):
    """A JSON object of at most 4 KiB. Numbers come in as Decimals (exact parsing) and are
    kept as JSON numbers."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "A JSON object of at most 4 KiB.")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("must be a JSON object")
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=_number)
        if "\\u0000" in text:  # json.dumps escapes NUL however ensure_ascii is set
            raise serializers.ValidationError("must not contain NUL characters (\\u0000)")
        if len(text.encode()) > METADATA_MAX_BYTES:
            raise serializers.ValidationError(f"at most {METADATA_MAX_BYTES} bytes of JSON")
        return json.loads(text)


def _number(value):
    if isinstance(value, Decimal):
        # Refused before any conversion: int() of 1e1000000 builds a million-digit number.
        if value.is_finite() and value != 0 and not -300 <= value.adjusted() <= 300:
            raise serializers.ValidationError("numbers in metadata must be within ±1e300")
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
