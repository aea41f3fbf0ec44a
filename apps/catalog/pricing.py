"""How a plan's price is split over what it sells (docs/revenue.md, "Plan periods: allocating
the price"): each credit type it includes, plus its platform fee when it has one.

The period's price is allocated over these components in proportion to their standalone
values (what each would sell for alone), to the currency's smallest unit, by largest
remainder: the parts always add up to the price. Without standalone values the credits
split it in proportion to their number (one credit type takes the whole price). Pure: it
reads the attributes of the plan and allowances it is given and touches no database, so the
renewal, the admin, the catalog import and data migrations (with historical models) share it.
"""

from decimal import Decimal

from apps.core.allocation import allocate

NO_VALUES_WITH_FEE = (
    "A platform fee needs a standalone value on every included credit type: the price is "
    "split in proportion to them."
)
SOME_VALUES = (
    "Give a standalone value on every included credit type of the plan, or on none: "
    "missing for {missing}."
)
ALL_ZERO = "The standalone values add up to 0: nothing to split the price by."


def _priced(allowances):
    """The allowances that take part: those granting credits (one of 0 credits grants
    nothing, so it takes no part of the price)."""
    return [a for a in allowances if a.credits_per_period and a.credits_per_period > 0]


def split_problems(*, fee_value, allowances, name=lambda a: str(a.credit_type_id)):
    """Why the plan's standalone values cannot split its price, as messages ([] if they
    can). `allowances` may be unsaved (an admin form's, a catalog file's): anything with
    `credits_per_period` and `standalone_value`; `name(allowance)` names one in a message."""
    priced = _priced(allowances)
    given = [a for a in priced if a.standalone_value is not None]
    fee_value = fee_value or Decimal(0)
    if given and len(given) < len(priced):
        missing = ", ".join(name(a) for a in priced if a.standalone_value is None)
        return [SOME_VALUES.format(missing=missing)]
    if fee_value > 0 and priced and not given:
        return [NO_VALUES_WITH_FEE]
    if given and sum(a.standalone_value for a in given) + fee_value == 0:
        return [ALL_ZERO]
    return []


def price_split(*, plan, allowances):
    """The period's price of `plan` allocated over `allowances` (its PlanAllowance rows)
    and its platform fee: `(bases, fee)`, `bases[i]` for `allowances[i]` (0 for one of 0
    credits), `fee` the platform fee's part (0 without one). `sum(bases) + fee` is exactly
    `plan.price`. A plan without credits puts its whole price in the fee.

    Raises ValueError when the standalone values break the rules of `split_problems`
    (the admin and the catalog import refuse such a plan)."""
    allowances = list(allowances)
    problems = split_problems(fee_value=plan.platform_fee_value, allowances=allowances)
    if problems:
        raise ValueError(f"Plan {plan.code}: {problems[0]}")
    priced = _priced(allowances)
    if not priced:
        return [Decimal(0) for _ in allowances], plan.price
    fee_value = plan.platform_fee_value or Decimal(0)
    if priced[0].standalone_value is None:
        weights = [a.credits_per_period for a in priced]
    else:
        weights = [a.standalone_value for a in priced]
    with_fee = fee_value > 0
    parts = allocate(plan.price, weights + [fee_value] * with_fee, currency=plan.currency)
    by_allowance = {id(a): part for a, part in zip(priced, parts, strict=False)}
    bases = [by_allowance.get(id(a), Decimal(0)) for a in allowances]
    return bases, (parts[-1] if with_fee else Decimal(0))
