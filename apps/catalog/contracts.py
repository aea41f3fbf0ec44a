"""Contracts: an account's own terms for a dated window (docs/contracts.md).

The body staff send (API `PUT accounts/{id}/contract`, the admin) uses the catalog file's plan
vocabulary: `included_credits`, `features` (`feature`, `enabled`, `credits_per_unit`,
`limit_per_period`), `overage` (`policy`, `limit`, `unit_price`), `price`, `currency`, plus
`starts_at` and `ends_at`. Every term is optional: absent means the plan's. A feature's
`limit_per_period` given as null means "no quota" (the contract lifts the plan's).

Where each term takes effect, and nowhere else:
- feature costs, enabled, quotas and the overdraft: the terms function (apps/usage/sql/terms.sql),
  for every consume path, batch, reservation, check and entitlements;
- included credits, the period's price and the overage's unit price: `period_terms` below,
  which the renewal (apps/periods/services.py) asks for each period it grants or settles.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

from django.db import transaction
from django.utils.dateparse import parse_datetime

from apps.core import clock, events
from apps.core.currencies import price_problem
from apps.core.decimals import format_decimal, format_money
from apps.core.errors import ContractNotFound, InvalidInput
from apps.core.history import REASON_MAX_LENGTH

from .models import Contract, ContractAllowance, ContractFeature, CreditType, Feature, Plan
from .pricebook import (
    OVERAGE_FIELDS,
    OVERAGE_LIMIT_NEEDS_ALLOW,
    PLAN_FEATURE_FIELDS,
    _bool,
    _choice,
    _credits,
    _currency,
    _Entry,
    _list,
    _mapping,
    _money,
    _optional,
    _unit_price,
    _unknown_keys,
)
from .pricing import split_problems


class _Terms(_Entry):
    """pricebook's entry, its problems kept as `(path, message)` for the API's details."""

    def fail(self, path, message):
        self.errors.append((f"{self.label}.{path}" if self.label else path, message))


CONTRACT_FIELDS = (
    "starts_at", "ends_at", "price", "currency", "included_credits", "features", "overage",
)  # fmt: skip
BOOLEAN = Feature.Kind.BOOLEAN
LATEST_YEAR = 9998  # a moment the databases and every time zone can still hold


def _moment(value):
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None:
        raise ValueError("must be an ISO 8601 date and time, e.g. 2027-01-01T00:00:00Z")
    if moment.tzinfo is None:
        raise ValueError("needs a time zone (Z or +hh:mm)")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        moment = None
    if moment is None or not 1970 <= moment.year <= LATEST_YEAR:
        raise ValueError(f"must be between 1970 and {LATEST_YEAR}")
    return moment


def validate_contract(raw, *, credit_types, features, now):
    """`(terms, problems)`: the canonical terms (only the keys given; a feature's limit only
    where given, null included) and every problem as `{path: [message]}`.
    `credit_types`: codes that exist; `features`: `{code: kind}` of the active features."""
    errors = []
    if not isinstance(raw, dict):
        return None, {"non_field_errors": ["The contract must be a JSON object."]}
    entry = _Terms("", raw, errors)
    _unknown_keys(entry, raw, CONTRACT_FIELDS)
    terms = {"starts_at": entry.take("starts_at", _moment, default=now)}
    ends_at = entry.take("ends_at", _optional(_moment), default=None)
    terms["ends_at"] = ends_at
    if ends_at is not None and terms["starts_at"] is not None:
        if ends_at <= terms["starts_at"]:
            entry.fail("ends_at", "must be after starts_at")
        elif ends_at <= now:
            entry.fail("ends_at", "must be in the future (a contract that has ended does nothing)")
    for name, check in (("price", _money), ("currency", _currency)):
        if name in raw:
            terms[name] = entry.take(name, _optional(check))
    # The period's currency is the contract's only with a price of its own, and the overage
    # is billed in the period's currency: a price comes with its currency and its own
    # overage unit price (the plan's is in the plan's currency).
    if raw.get("price") is not None:
        if not raw.get("currency"):
            entry.fail("currency", "is required with a price")
        elif (
            terms.get("price")
            and terms.get("currency")
            and (problem := price_problem(Decimal(terms["price"]), terms["currency"]))
        ):
            entry.fail("price", problem)
        overage = raw.get("overage")
        if not isinstance(overage, dict) or overage.get("unit_price") is None:
            entry.fail("overage.unit_price", "is required with a price (in its currency)")
    elif raw.get("currency") is not None:
        entry.fail("currency", "is given only with a price (without one, the plan's applies)")

    if "included_credits" in raw:
        included = {}
        for code, credits in sorted((entry.take("included_credits", _mapping) or {}).items()):
            path = f"included_credits.{code}"
            if code not in credit_types:
                entry.fail(path, f"unknown credit type {code!r}")
                continue
            try:
                included[code] = _credits(credits)
            except ValueError as exc:
                entry.fail(path, str(exc))
        terms["included_credits"] = included

    if "features" in raw:
        terms["features"] = _features(entry, raw, features, errors)

    if "overage" in raw:
        raw_overage = entry.take("overage", _mapping) or {}
        sub = _Terms("overage", raw_overage, errors)
        _unknown_keys(sub, raw_overage, OVERAGE_FIELDS)
        checks = {"policy": _choice("block", "allow"), "limit": _credits, "unit_price": _unit_price}
        overage = {name: sub.take(name, _optional(check)) for name, check in checks.items()
                   if name in raw_overage}  # fmt: skip
        limited = overage.get("limit") not in (None, "0")
        if limited and overage.get("policy") != "allow":
            # A limit with the plan's policy would change meaning with the account's plan.
            sub.fail("limit", OVERAGE_LIMIT_NEEDS_ALLOW)
        terms["overage"] = overage
    return terms, _by_path(errors)


def _features(entry, raw, known, errors):
    found, seen = [], set()
    for index, raw_feature in enumerate(entry.take("features", _list) or []):
        path = f"features[{index}]"
        if not isinstance(raw_feature, dict):
            entry.fail(path, "must be a mapping")
            continue
        sub = _Terms(path, raw_feature, errors)
        _unknown_keys(sub, raw_feature, PLAN_FEATURE_FIELDS)
        code = sub.take("feature", lambda v: v if isinstance(v, str) else _fail("must be text"))
        if code is not None and code not in known:
            sub.fail("feature", f"no active feature has the code {code!r}")
        elif code is not None and code in seen:
            sub.fail("feature", f"{code!r} is listed twice")
        seen.add(code)
        checks = {"enabled": _bool, "credits_per_unit": _credits, "limit_per_period": _credits}
        item = {"feature": code}
        for name, check in checks.items():
            if name in raw_feature:
                item[name] = sub.take(name, _optional(check))
        for name, words in (("enabled", "true or false"), ("credits_per_unit", "a number")):
            if name in raw_feature and raw_feature[name] is None:
                sub.fail(name, f"must be {words} (leave it out for the plan's)")
        if known.get(code) == BOOLEAN:
            for name in ("credits_per_unit", "limit_per_period"):
                if name in raw_feature:
                    sub.fail(name, f"{code!r} is an on/off feature: only enabled applies")
        if len(item) == 1:
            sub.fail("feature", "sets no term: give enabled, credits_per_unit or limit_per_period")
        found.append(item)
    return sorted(found, key=lambda f: f["feature"] or "")


def _fail(message):
    raise ValueError(message)


def _by_path(errors):
    details = {}
    for path, message in errors:
        details.setdefault(path, []).append(message)
    return details


# --- reading ---------------------------------------------------------------------------------


def contract_of(*, account):
    """The account's contract with its rows, or None."""
    return (
        Contract.objects.filter(account=account)
        .prefetch_related("features__feature", "allowances__credit_type")
        .first()
    )


def contract_document(contract):
    """The contract in the body's vocabulary: only the terms it sets."""
    document = {
        "starts_at": contract.starts_at,
        "ends_at": contract.ends_at,
    }
    if contract.price is not None:
        document["price"] = format_money(contract.price)
    if contract.currency:
        document["currency"] = contract.currency
    allowances = sorted(contract.allowances.all(), key=lambda a: a.credit_type.code)
    if allowances:
        document["included_credits"] = {
            a.credit_type.code: format_decimal(a.credits_per_period) for a in allowances
        }
    features = sorted(contract.features.all(), key=lambda f: f.feature.code)
    if features:
        document["features"] = [_feature_document(f) for f in features]
    overage = {
        name: value
        for name, value in (
            ("policy", contract.overage_policy or None),
            ("limit", _optional(format_decimal)(contract.overage_limit)),
            ("unit_price", _optional(format_decimal)(contract.overage_unit_price)),
        )
        if value is not None
    }
    if overage:
        document["overage"] = overage
    return document


def _feature_document(row):
    item = {"feature": row.feature.code}
    if row.enabled is not None:
        item["enabled"] = row.enabled
    if row.credits_per_unit is not None:
        item["credits_per_unit"] = format_decimal(row.credits_per_unit)
    if row.sets_limit:
        item["limit_per_period"] = _optional(format_decimal)(row.limit_per_period)
    return item


def contract_state(contract, now):
    """`scheduled`, `live` or `ended` at `now`."""
    if contract.live_at(now):
        return "live"
    return "scheduled" if now < contract.starts_at else "ended"


# --- writing ---------------------------------------------------------------------------------


def put_contract(*, account, raw, acting_user=None, reason="", in_caller_transaction=False):
    """Give `account` the contract `raw` describes (the body above), replacing the one it
    has: returns `(contract, created)`. Raises InvalidInput listing every problem.
    `in_caller_transaction`: for the pricing simulator, which writes a draft contract into
    its own copies of the catalog inside a transaction that always rolls back."""
    reason = (reason or "").strip()[:REASON_MAX_LENGTH]
    now = clock.now()
    terms, problems = validate_contract(
        raw,
        credit_types=set(CreditType.objects.values_list("code", flat=True)),
        features=dict(Feature.objects.filter(active=True).values_list("code", "kind")),
        now=now,
    )
    if problems:
        raise InvalidInput("The contract is not valid.", details=problems)
    credit_types = {c.code: c for c in CreditType.objects.filter(code__in=terms.get(
        "included_credits", {}))}  # fmt: skip
    features = {
        f.code: f
        for f in Feature.objects.filter(code__in=[f["feature"] for f in terms.get("features", [])])
    }
    overage = terms.get("overage", {})
    with transaction.atomic(durable=not in_caller_transaction):
        if not in_caller_transaction:  # the simulator's copy is its own: nobody to wait for
            _lock_account(account)
        contract = Contract.objects.filter(account=account).first()
        created = contract is None
        contract = contract or Contract(account=account)
        contract.starts_at, contract.ends_at = terms["starts_at"], terms["ends_at"]
        contract.price = _decimal(terms.get("price"))
        contract.currency = terms.get("currency") or ""
        contract.overage_policy = overage.get("policy") or ""
        contract.overage_limit = _decimal(overage.get("limit"))
        contract.overage_unit_price = _decimal(overage.get("unit_price"))
        _save(contract, acting_user, reason)
        _replace(
            contract.allowances,
            [
                ContractAllowance(contract=contract, credit_type=credit_types[code],
                                  credits_per_period=Decimal(credits))
                for code, credits in terms.get("included_credits", {}).items()
            ],
            acting_user, reason,
        )  # fmt: skip
        _replace(
            contract.features,
            [
                ContractFeature(
                    contract=contract, feature=features[item["feature"]],
                    enabled=item.get("enabled"),
                    credits_per_unit=_decimal(item.get("credits_per_unit")),
                    sets_limit="limit_per_period" in item,
                    limit_per_period=_decimal(item.get("limit_per_period")),
                )
                for item in terms.get("features", [])
            ],
            acting_user, reason,
        )  # fmt: skip
        events.publish(events.CONTRACT_CHANGED, account_id=account.pk)
    return contract_of(account=account), created


def remove_contract(*, account, acting_user=None, reason=""):
    """End the account's contract: its plan's terms apply from now on. The history keeps it."""
    reason = (reason or "").strip()[:REASON_MAX_LENGTH]
    with transaction.atomic(durable=True):
        _lock_account(account)
        contract = Contract.objects.filter(account=account).first()
        if contract is None:
            raise ContractNotFound()
        for row in [*contract.features.all(), *contract.allowances.all(), contract]:
            row._history_user, row._change_reason = acting_user, reason
            row.delete()
        events.publish(events.CONTRACT_CHANGED, account_id=account.pk)


def _lock_account(account):
    # Why the lock: two writers of one account's contract go one after the other, the first
    # contract included (there is no contract row to lock yet; a second insert would break
    # the one-per-account constraint). Nothing locks an account after its contract.
    type(account).objects.filter(pk=account.pk).select_for_update(of=("self",)).get()


def _save(row, acting_user, reason):
    row._history_user, row._change_reason = acting_user, reason
    row.save()


def _replace(manager, rows, acting_user, reason):
    """Rows one by one, so that each change has its history row (with who and why)."""
    for old in manager.all():
        old._history_user, old._change_reason = acting_user, reason
        old.delete()
    for row in rows:
        _save(row, acting_user, reason)


def _decimal(value):
    return None if value is None else Decimal(value)


# --- the renewal's terms ---------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodTerms:
    """What one period of a plan sells for, its contract applied: what the renewal grants
    (`allowances`, PlanAllowance-like rows), the price it allocates over them (the
    attributes apps/catalog/pricing.price_split reads) and the overage's unit price."""

    plan: Plan
    code: str
    name: str
    price: Decimal
    currency: str
    platform_fee_value: Decimal
    overage_unit_price: Decimal
    allowances: list


def prices_the_period(contract, at, *, currency=None):
    """Whether `contract` sets the price of a period starting at `at`: live then, with a
    price, and in `currency` when the period can only be billed in that one (a Stripe
    subscription's: Stripe bills a subscription in one currency). Otherwise the period keeps
    the plan's price, currency and overage unit price."""
    return (
        contract is not None
        and contract.price is not None
        and contract.live_at(at)
        and currency in (None, contract.currency)
    )


def period_terms(*, plan, allowances, contract=None, at: datetime, currency=None):
    """The terms of `plan` (with its `allowances`) for the period starting at `at`, under
    `contract` when it is live then. A contract's price, currency and overage unit price
    replace the plan's when it `prices_the_period` — invoiced by hand, or billed through
    Stripe at the contract's own Stripe price (apps/billing/contract_prices.py; `currency`:
    the Stripe subscription's). A contract's included
    credits replace the plan's for their credit type (a contract's new credit type has no
    standalone value); when the standalone values no longer split the price
    (docs/revenue.md), the price is split in proportion to credits, with no platform fee."""
    base = PeriodTerms(
        plan=plan, code=plan.code, name=plan.name, price=plan.price, currency=plan.currency,
        platform_fee_value=plan.platform_fee_value, overage_unit_price=plan.overage_unit_price,
        allowances=list(allowances),
    )  # fmt: skip
    if contract is None or not contract.live_at(at):
        return base
    values = {a.credit_type_id: a.standalone_value for a in allowances}
    replaced = {a.credit_type_id: a for a in contract.allowances.all()}
    rows = [a for a in allowances if a.credit_type_id not in replaced] + [
        SimpleNamespace(credit_type_id=a.credit_type_id, credit_type=a.credit_type,
                        credits_per_period=a.credits_per_period,
                        standalone_value=values.get(a.credit_type_id))
        for a in replaced.values()
    ]  # fmt: skip
    rows.sort(key=lambda a: a.credit_type.code)
    fee = plan.platform_fee_value
    if split_problems(fee_value=fee, allowances=rows):
        rows = [_without_value(a) for a in rows]
        fee = Decimal(0)
    priced = prices_the_period(contract, at, currency=currency)
    return PeriodTerms(
        plan=plan,
        code=plan.code,
        name=f"{plan.name} (contract)",
        price=contract.price if priced else plan.price,
        currency=contract.currency if priced else plan.currency,
        platform_fee_value=fee,
        overage_unit_price=(
            contract.overage_unit_price
            if contract.overage_unit_price is not None and (priced or contract.price is None)
            else plan.overage_unit_price
        ),
        allowances=rows,
    )


def _without_value(allowance):
    return SimpleNamespace(
        credit_type_id=allowance.credit_type_id, credit_type=allowance.credit_type,
        credits_per_period=allowance.credits_per_period, standalone_value=None,
    )  # fmt: skip
