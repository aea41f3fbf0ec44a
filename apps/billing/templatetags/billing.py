"""How the billing page writes credits and money: thousands grouped, no trailing zeros on
credits, always two places on money."""

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def credits(value):
    if value is None:
        return ""
    value = Decimal(value)
    text = f"{value:,.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@register.filter
def money(value, currency=""):
    if value is None:
        return ""
    return f"{Decimal(value):,.2f} {currency.upper()}".strip()
