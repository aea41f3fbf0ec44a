"""Currencies' smallest units: what "to the cent" means in each (a yen has no cents)."""

from decimal import ROUND_HALF_UP, Decimal

# Stripe counts most currencies in cents, these in whole units.
ZERO_DECIMAL_CURRENCIES = {
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
}  # fmt: skip


def currency_places(currency):
    """Decimal places of the currency's smallest unit: 0 for yen, else 2."""
    return 0 if currency.upper() in ZERO_DECIMAL_CURRENCIES else 2


def smallest_unit(currency):
    """0.01 for dollars, 1 for yen."""
    return Decimal(1).scaleb(-currency_places(currency))


def in_smallest_unit(amount, currency):
    """`amount` rounded (half up) to the currency's smallest unit: 70.35 JPY -> 70."""
    return Decimal(amount).quantize(smallest_unit(currency), ROUND_HALF_UP)


def price_problem(amount, currency):
    """Why `amount` cannot be a price in `currency`, or None. A price is a whole number of the
    currency's smallest unit: it is split and billed in those units (allocation.py, Stripe's
    minor units), so 12.345 USD or 100.5 JPY would lose the fraction. Unit prices per credit
    are not prices in this sense and may have more places."""
    if amount is None or not currency:
        return None
    code = currency.upper()
    if Decimal(amount) % smallest_unit(code) == 0:
        return None
    shown = format(Decimal(amount).normalize(), "f")
    places = currency_places(code)
    if places == 0:
        return f"A price in {code} is a whole number ({code} has no smaller unit): {shown} is not."
    return (
        f"A price in {code} has at most {places} decimal places (its smallest unit is "
        f"{smallest_unit(code)} {code}): {shown} has more."
    )
