"""Exact decimals for credits and money. Input with more precision than a field holds is an
error, never silently rounded (docs/ledger.md, "Rules")."""

from decimal import Decimal, InvalidOperation

CREDIT_PLACES = 6
CREDIT_DIGITS = 24
UNIT_PRICE_PLACES = 10
UNIT_PRICE_DIGITS = 20
MONEY_PLACES = 2
MONEY_DIGITS = 12


def money_sum(value):
    """A database sum of money, exact: SQLite sums decimals as floats (3.19 comes back as
    3.19000000000000 or 3.1899999999999), so every sum is brought back to the field's places."""
    return Decimal(value or 0).quantize(Decimal(1).scaleb(-MONEY_PLACES))


def credit_sum(value):
    """A database sum of credits, exact (see `money_sum`)."""
    return Decimal(value or 0).quantize(Decimal(1).scaleb(-CREDIT_PLACES))


class DecimalInputError(ValueError):
    """A value that is not an exact, finite decimal within a field's precision."""


def parse_decimal(value, *, places, digits, allow_negative=False):
    """Turn a string, int or Decimal into a Decimal, rejecting what cannot be stored exactly.

    Floats are accepted only through their shortest repr (what a JSON or YAML number says),
    booleans never.
    """
    if isinstance(value, bool) or value is None:
        raise DecimalInputError("must be a decimal number")
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise DecimalInputError("must be a decimal number")
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise DecimalInputError(f"{text!r} is not a decimal number") from None
    if not isinstance(value, Decimal):
        raise DecimalInputError("must be a decimal number")
    if not value.is_finite():
        raise DecimalInputError("must be a finite number")
    # Checked before any arithmetic: abs() or normalize() of 1e1000000 overflows the context.
    if value != 0 and value.adjusted() >= digits - places:
        raise DecimalInputError(f"is too large (at most {digits - places} digits before the point)")
    if value != 0 and value.adjusted() < -places - digits:
        raise DecimalInputError(f"has more than {places} decimal places")
    sign, digit_tuple, exponent = value.as_tuple()
    if exponent < -places:
        # 1.2300000 has trailing zeros beyond the limit but is still exact: accept it.
        normalized = value.normalize()
        if normalized.as_tuple().exponent < -places:
            raise DecimalInputError(f"has more than {places} decimal places")
        value = normalized
    if value.is_signed() and value != 0 and not allow_negative:
        raise DecimalInputError("must not be negative")
    if abs(value) >= Decimal(10) ** (digits - places):
        raise DecimalInputError(f"is too large (at most {digits - places} digits before the point)")
    return value.quantize(Decimal(1).scaleb(-places)) + 0


def format_decimal(value):
    """Shortest exact text for a decimal: 1000.000000 -> "1000", 0.500000 -> "0.5"."""
    if value is None:
        return None
    text = format(Decimal(value).normalize(), "f")
    return text


def format_money(value):
    """Money with its two minor-unit places: 29 -> "29.00"."""
    return format(Decimal(value).quantize(Decimal("0.01")), "f")
