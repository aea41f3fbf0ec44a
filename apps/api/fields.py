"""Input fields with the API's rules: exact decimals, external ids, small JSON metadata, and
strict types. Each field's schema (`extend_schema_field`) states exactly what it accepts, and
the field refuses everything else: a JSON number is not a string, a string is not an integer,
blanks and surrounding spaces are not trimmed into something valid."""

import json
import math
import re
from datetime import UTC, datetime
from decimal import Decimal

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from apps.accounts.models import EXTERNAL_ID_PATTERN
from apps.core.decimals import CREDIT_DIGITS, CREDIT_PLACES, DecimalInputError, parse_decimal

METADATA_MAX_BYTES = 4096
SIX_PLACES = Decimal(1).scaleb(-CREDIT_PLACES)
CREDITS_INTEGER_DIGITS = CREDIT_DIGITS - CREDIT_PLACES

# A credit amount as a string: greater than zero, no sign, no exponent, no leading zeros,
# at most 18 digits before the point and 6 after it. (JSON Schema has no lookahead: the
# "not all zeros" fraction of 0.xxxxxx is spelled out by the position of its first digit.)
_FRACTION_OF_ZERO = "|".join(
    f"{'0' * zeros}[1-9][0-9]{{0,{CREDIT_PLACES - 1 - zeros}}}" for zeros in range(CREDIT_PLACES)
)
CREDITS_PATTERN = (
    rf"^(?:[1-9][0-9]{{0,{CREDITS_INTEGER_DIGITS - 1}}}(?:\.[0-9]{{1,{CREDIT_PLACES}}})?"
    rf"|0\.(?:{_FRACTION_OF_ZERO}))$"
)
_CREDITS_STRING = re.compile(CREDITS_PATTERN.removeprefix("^").removesuffix("$"), re.ASCII)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "pattern": CREDITS_PATTERN, "example": "12.5"},
            {
                "type": "number",
                "exclusiveMinimum": 0,
                "exclusiveMaximum": 10**CREDITS_INTEGER_DIGITS,
                "multipleOf": float(SIX_PLACES),
            },
        ],
        "description": "A decimal string (responses always use strings) or a JSON number: "
        f"greater than zero, at most {CREDIT_PLACES} decimal places and "
        f"{CREDITS_INTEGER_DIGITS} digits before the point.",
    }
)
class CreditsField(serializers.Field):
    """A credit amount or quantity: a decimal string or JSON number, > 0, at most 6 places.
    Booleans, empty strings, NaN, Infinity, exponents in strings and overflowing exponents
    are refused."""

    pure_validation = True  # depends on the value alone (flat_serializers.FlatInput)

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "Decimal string or number, > 0, at most 6 places.")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and not _CREDITS_STRING.fullmatch(data):
            raise serializers.ValidationError(
                "must be a decimal such as 12.5: digits, at most 6 after the point, above zero"
            )
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


class StrictCharField(serializers.CharField):
    """A JSON string, taken as sent: numbers are not turned into strings and surrounding
    whitespace is kept (and judged), so what the schema calls a string is all it accepts."""

    pure_validation = True  # depends on the value alone (flat_serializers.FlatInput)

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: strings ("5") and booleans are refused, as the schema's `integer` says."""

    def to_internal_value(self, data):
        if isinstance(data, (str, bool)):
            self.fail("invalid")
        return super().to_internal_value(data)


# RFC 3339, as the schema's `format: date-time` means it: a date, "T", a time with seconds
# and a zone (Django alone would also take "2026-01-01" or "2026-01-01 10:00").
DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)


class StrictDateTimeField(serializers.DateTimeField):
    """An RFC 3339 date-time with its zone; an empty value is refused, not ignored."""

    def to_internal_value(self, value):
        if not isinstance(value, str) or not DATE_TIME.fullmatch(value):
            self.fail("invalid", format="YYYY-MM-DDThh:mm:ss[.ffffff](Z|±hh:mm)")
        return super().to_internal_value(value)


class Timestamp(serializers.DateTimeField):
    """A moment in an answer: RFC 3339 in UTC, ending in Z, whichever time zone is active
    (DateTimeField's would follow the current one, looked up for every value)."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=UTC, **kwargs)

    def to_representation(self, value):
        """DateTimeField's, in fewer steps for what every answer holds: an aware datetime in
        ISO 8601 (tests/api/test_fields.py holds the two equal)."""
        if type(value) is datetime and value.tzinfo is not None and self._iso():
            text = value.astimezone(UTC).isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        return super().to_representation(value)

    def _iso(self):
        return getattr(self, "format", api_settings.DATETIME_FORMAT).lower() == ISO_8601


URL_PATTERN = (
    r"^https?://[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::[0-9]{1,5})?(?:[/?#][!-~]*)?$"
)
_URL = re.compile(URL_PATTERN.removeprefix("^").removesuffix("$"), re.ASCII)


@extend_schema_field({"type": "string", "pattern": URL_PATTERN, "maxLength": 2000,
                      "example": "https://app.example.com/billing/done"})  # fmt: skip
class WebUrlField(StrictCharField):
    """An http(s) URL to send a customer back to: a host name (letters, digits, hyphens,
    dots), an optional port, and printable ASCII after it (Stripe's `{CHECKOUT_SESSION_ID}`
    included)."""

    default_error_messages = {"url": "must be an http or https URL with a host name"}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 2000)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not _URL.fullmatch(value):
            self.fail("url")
        return value


class ExternalIdField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "The app's own id: 1-255 letters, digits, _ - . : @")
        super().__init__(max_length=255, **kwargs)
        self.validators.append(
            RegexValidator(re.compile(EXTERNAL_ID_PATTERN.removesuffix("$") + r"\Z"))
        )


class QuerySerializer(serializers.Serializer):
    """Query parameters: one given empty (`?at=`) is refused, as the schema's types say,
    instead of being taken as not given."""

    def to_internal_value(self, data):
        blank = [name for name in self.fields if name in data and data.get(name) == ""]
        if blank:
            raise serializers.ValidationError({name: ["must not be empty"] for name in blank})
        return super().to_internal_value(data)


@extend_schema_field({"type": "object", "additionalProperties": True, "maxProperties": 256,
                      "description": "A JSON object of at most 4 KiB (as compact JSON), with "
                      "no NUL character in any key or string."})  # fmt: skip
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
        if len(data) > 256:
            raise serializers.ValidationError("at most 256 keys")
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=_number)
        if "\\u0000" in text:  # json.dumps escapes NUL however ensure_ascii is set
            raise serializers.ValidationError("must not contain NUL characters (\\u0000)")
        if len(text.encode()) > METADATA_MAX_BYTES:
            raise serializers.ValidationError(f"at most {METADATA_MAX_BYTES} bytes of JSON")
        return json.loads(text)


def _number(value):
    if isinstance(value, Decimal):
        # What a JSON number read as a double can carry (about ±1.8e308 and 5e-324 to it);
        # refused before any conversion: int() of 1e1000000 would build a million digits.
        if value.is_finite() and value != 0:
            if not -324 <= value.adjusted() <= 308:
                raise serializers.ValidationError(DOUBLE_RANGE)
            if value == value.to_integral_value():
                return int(value)
            as_float = float(value)
            if math.isinf(as_float) or as_float == 0:
                raise serializers.ValidationError(DOUBLE_RANGE)
            return as_float
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


DOUBLE_RANGE = "numbers in metadata must be doubles: within ±1.7e308, none nearer zero than 5e-324"
