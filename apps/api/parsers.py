import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class ExactJSONParser(JSONParser):
    """JSON whose numbers with a fraction or exponent become Decimals, never floats: a credit
    amount such as 12345678901234567.5 must not be rounded on its way in. NaN and Infinity
    are not JSON and are refused as malformed."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(
                stream.read().decode(encoding), parse_float=_decimal, parse_constant=_refuse
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"The body is not valid JSON: {exc}") from None


def _decimal(text):
    from decimal import Decimal

    return Decimal(text)


def _refuse(name):
    raise ValueError(f"{name} is not a number JSON allows")
