"""Field factories so every credit, unit price and money column has the same precision."""

import re

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from .decimals import (
    CREDIT_DIGITS,
    CREDIT_PLACES,
    MONEY_DIGITS,
    MONEY_PLACES,
    UNIT_PRICE_DIGITS,
    UNIT_PRICE_PLACES,
)

CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
code_validator = RegexValidator(
    CODE_RE,
    "Use 1-64 lowercase letters, digits, '_', '-' or '.', starting with a letter or digit.",
)
currency_validator = RegexValidator(r"^[A-Z]{3}$", "Use a three-letter ISO 4217 code, e.g. USD.")


def credit_field(**kwargs):
    kwargs.setdefault("validators", [MinValueValidator(0)])
    return models.DecimalField(max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES, **kwargs)


def unit_price_field(**kwargs):
    kwargs.setdefault("validators", [MinValueValidator(0)])
    return models.DecimalField(
        max_digits=UNIT_PRICE_DIGITS, decimal_places=UNIT_PRICE_PLACES, **kwargs
    )


def money_field(**kwargs):
    kwargs.setdefault("validators", [MinValueValidator(0)])
    return models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, **kwargs)


def code_field(**kwargs):
    kwargs.setdefault("max_length", 64)
    kwargs.setdefault("unique", True)
    kwargs.setdefault("validators", [code_validator])
    kwargs.setdefault("help_text", "Stable identifier used by the API and catalog files.")
    return models.CharField(**kwargs)


def currency_field(**kwargs):
    kwargs.setdefault("max_length", 3)
    kwargs.setdefault("default", "USD")
    kwargs.setdefault("validators", [currency_validator])
    return models.CharField(**kwargs)
