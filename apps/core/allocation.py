"""How money is split, exactly, in a currency's smallest unit: a total allocated over parts
never gains or loses a cent (docs/revenue.md, "To the cent")."""

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, localcontext

from .currencies import in_smallest_unit, smallest_unit
from .decimals import CREDIT_DIGITS

PRECISION = 2 * CREDIT_DIGITS + 10  # exact for any credit or money value this app stores


def allocate(total, weights, *, currency):
    """Split `total` over `weights` in proportion, in the currency's smallest unit, by
    largest remainder: the parts add up to `total` exactly; ties go to the earlier part.
    All weights zero: equal weights."""
    weights = [Decimal(w) for w in weights]
    if not weights:
        return []
    if not any(weights):
        weights = [Decimal(1)] * len(weights)
    unit = smallest_unit(currency)
    whole = sum(weights)
    with localcontext(prec=PRECISION):
        exact = [total * w / whole for w in weights]
        parts = [e.quantize(unit, rounding=ROUND_DOWN) for e in exact]
        short = int((total - sum(parts)) / unit)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[:short]:
        parts[i] += unit
    return parts


def released(basis, amount, out, *, currency):
    """What of a grant's `basis` (paid for its `amount` of credits) is released once `out`
    of its credits have left it, rounded half up to the smallest unit. Cumulative: a
    movement of credits releases released(after) - released(before), so however a grant's
    life is cut into movements, it releases exactly its basis once all its credits are
    out."""
    if not basis or not amount or out <= 0:
        return Decimal(0)
    if out >= amount:
        return basis
    with localcontext(prec=PRECISION):
        return (basis * out / amount).quantize(smallest_unit(currency), rounding=ROUND_HALF_UP)


def cost_basis(amount, unit_price, *, currency):
    """What `amount` credits at `unit_price` come to, in the smallest unit (half up)."""
    with localcontext(prec=PRECISION):
        return in_smallest_unit(amount * unit_price, currency)
