"""How the billing page writes credits and money: thousands grouped, no trailing zeros on
credits, money in its currency's places (none for yen), grant sources in words."""

from decimal import Decimal

from django import template

from apps.billing.gateway import currency_places
from apps.wallets.models import CreditGrant

register = template.Library()


@register.filter
def credits(value):
    if value is None:
        return ""
    text = f"{Decimal(value):,.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@register.filter
def money(value, currency=""):
    if value is None:
        return ""
    places = currency_places(currency)
    return f"{Decimal(value):,.{places}f} {currency.upper()}".strip()


@register.filter
def grant_source(value):
    try:
        return CreditGrant.Source(value).label
    except ValueError:
        return value
