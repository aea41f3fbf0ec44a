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
