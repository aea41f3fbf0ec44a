import json
import re
from decimal import Decimal

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# JSON may escape half of a UTF-16 surrogate pair ("\ud800"); that is no character, and no
# database column can store it.
LONE_SURROGATE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


class ExactJSONParser(JSONParser):
    """JSON whose numbers with a fraction or exponent become Decimals, never floats: a credit
    amount such as 12345678901234567.5 must not be rounded on its way in. NaN and Infinity
    are not JSON and are refused as malformed."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return parse_exact_json(stream.read(), encoding)
        except ValueError as exc:  # UnicodeDecodeError is one
            raise ParseError(f"The body is not valid JSON: {exc}") from None


# Arrays and objects inside one another. Deeper is refused as malformed, the same on every
# path, before it reaches anything recursive (json itself, a serializer, the database).
MAX_JSON_DEPTH = 64
TOO_DEEP = f"arrays and objects nest deeper than {MAX_JSON_DEPTH} levels"


def parse_exact_json(body, encoding="utf-8"):
    """Raises ValueError for anything ExactJSONParser refuses."""
    text = body.decode(encoding)
    if "\\u" in text and LONE_SURROGATE.search(text):  # (the test alone is cheaper)
        raise ValueError("a \\u escape names half a surrogate pair, which is not text")
    if text.startswith("\ufeff"):  # what json.loads refuses before decoding
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise ValueError(TOO_DEEP) from None
    # Counting brackets (strings included) is cheap and bounds the depth from above.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _too_deep(value):
        raise ValueError(TOO_DEEP)
    return value


def _too_deep(value):
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth > MAX_JSON_DEPTH:
            return True
        pending.extend((child, depth + 1) for child in item)
    return False


def _decimal(text):
    return Decimal(text)


def _refuse(name):
    raise ValueError(f"{name} is not a number JSON allows")


# Made once: json.loads with hooks makes a decoder per call.
_DECODER = json.JSONDecoder(parse_float=_decimal, parse_constant=_refuse)
