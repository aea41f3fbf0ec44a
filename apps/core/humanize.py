"""Numbers as staff read them: `10,000 credits`, `12.50 USD`. The API and exports keep exact
plain decimals; only screens for people use these."""

from decimal import Decimal

from .decimals import format_decimal


def group_digits(value):
    """Exact decimal with thousands separators and no trailing zeros: 10000.500000 ->
    "10,000.5"."""
    if value is None:
        return "—"
    text = format_decimal(value)
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("-").partition(".")
    whole = f"{int(whole):,}"
    return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"


def credits(value, unit="credits"):
    """`10,000 credits`; `1 credit`; `—` for none."""
    if value is None:
        return "—"
    if unit == "credits" and Decimal(value) in (1, -1):
        unit = "credit"
    return f"{group_digits(value)} {unit}".rstrip()


def money(value, currency=""):
    """`12.50 USD`, `1,200.00 EUR`: two places, grouped."""
    if value is None:
        return "—"
    amount = Decimal(value).quantize(Decimal("0.01"))
    sign = "-" if amount < 0 else ""
    whole, _, cents = format(abs(amount), "f").partition(".")
    return f"{sign}{int(whole):,}.{cents} {currency}".rstrip()


def unit_price(value, currency="", per="credit"):
    """`0.0125 USD / credit`: exact (a unit price has up to ten places), at least two."""
    if value is None:
        return "—"
    text = group_digits(value)
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')} {currency} / {per}".replace("  ", " ")


def credits_per(value, unit):
    """A price in credits per unit of use: `2.5 credits / call`."""
    if value is None:
        return "—"
    return f"{credits(value)} / {unit}"
