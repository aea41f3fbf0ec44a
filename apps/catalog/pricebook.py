"""The catalog file format ("pricing as code"), documented in docs/catalog.md.

`read_document` parses YAML or JSON without ever going through floats; `validate_document`
turns it into the canonical form (the form `export_catalog` writes) or lists every problem,
naming the entry; `dump_document` writes the canonical form. Import and export share these
so that a round trip is exact.
"""

import json
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace

import yaml

from apps.core.currencies import price_problem
from apps.core.decimals import (
    CREDIT_DIGITS,
    CREDIT_PLACES,
    MONEY_DIGITS,
    MONEY_PLACES,
    UNIT_PRICE_DIGITS,
    UNIT_PRICE_PLACES,
    DecimalInputError,
    format_decimal,
    format_money,
    parse_decimal,
)
from apps.core.fields import CODE_RE

from .pricing import split_problems

FORMAT_VERSION = 1
SECTIONS = ("credit_types", "features", "plans", "credit_packs")


class CatalogFileError(Exception):
    """The file as a whole cannot be read (syntax, top-level shape)."""


class _Loader(yaml.SafeLoader):
    """Safe YAML that keeps numbers exact and refuses duplicate keys (PyYAML keeps the last)."""


def _decimal_scalar(loader, node):
    return Decimal(loader.construct_scalar(node).replace("_", ""))


def _mapping_without_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:float", _decimal_scalar)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_document(text, *, filename=""):
    if filename.endswith(".json") or text.lstrip().startswith("{"):
        try:
            return json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise CatalogFileError(f"not valid JSON: {exc}") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise CatalogFileError(f"not valid YAML: {exc}") from None


def dump_document(document, *, fmt="yaml"):
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


# --- validation -------------------------------------------------------------------------------


@dataclass
class _Entry:
    """One entry being validated; collects problems under its label."""

    label: str
    raw: dict
    errors: list = field(default_factory=list)

    def fail(self, path, message):
        self.errors.append(f"{self.label}: {path}: {message}")

    def take(self, name, check, *, default=..., path=None):
        path = path or name
        if name not in self.raw:
            if default is ...:
                self.fail(path, "is required")
                return None
            return default
        try:
            return check(self.raw[name])
        except (DecimalInputError, ValueError, TypeError) as exc:
            self.fail(path, str(exc))
            return None


def _text(max_length, *, blank=False):
    def check(value):
        if not isinstance(value, str):
            raise ValueError("must be text")
        value = value.strip()
        if not value and not blank:
            raise ValueError("must not be empty")
        if len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters")
        return value

    return check


def _code(value):
    if not isinstance(value, str) or not CODE_RE.match(value):
        raise ValueError(
            f"{value!r} is not a valid code (1-64 lowercase letters, digits, '_', '-', '.')"
        )
    return value


def _bool(value):
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _choice(*choices):
    def check(value):
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return check


def _optional(check):
    def wrapped(value):
        return None if value is None else check(value)

    return wrapped


def _credits(value):
    return format_decimal(parse_decimal(value, places=CREDIT_PLACES, digits=CREDIT_DIGITS))


def _positive_credits(value):
    text = _credits(value)
    if Decimal(text) == 0:
        raise ValueError("must be greater than zero")
    return text


def _unit_price(value):
    return format_decimal(parse_decimal(value, places=UNIT_PRICE_PLACES, digits=UNIT_PRICE_DIGITS))


def _money(value):
    return format_money(parse_decimal(value, places=MONEY_PLACES, digits=MONEY_DIGITS))


def _percent(value):
    number = parse_decimal(value, places=2, digits=5)
    if number > 100:
        raise ValueError("must be between 0 and 100")
    return format_decimal(number)


def _currency(value):
    if not isinstance(value, str) or len(value) != 3 or not value.isalpha():
        raise ValueError("must be a three-letter ISO 4217 code such as USD")
    return value.upper()


def _whole(minimum):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"must be a whole number of at least {minimum}")
        return value

    return check


def _mapping(value):
    if not isinstance(value, dict):
        raise ValueError("must be a mapping")
    return value


FIELDS = {
    "credit_types": ("code", "name"),
    "features": (
        "code", "name", "description", "kind", "credit_type", "credits_per_unit", "unit_name",
        "active",
    ),
    "plans": (
        "code", "name", "description", "billing_interval", "price", "currency", "public",
        "active", "included_credits", "standalone_values", "platform_fee_value", "features",
        "rollover", "overage", "trial", "version",
    ),
    "credit_packs": (
        "code", "name", "description", "credit_type", "credits", "price", "currency",
        "expires_after_days", "public", "active",
    ),
}  # fmt: skip
# What an edit may change on a plan version in place. Every other field of a plan entry is a
# pricing term: changing one on a version that subscribers use publishes the next version.
PLAN_LISTING_FIELDS = ("code", "name", "description", "public", "active")
PLAN_FEATURE_FIELDS = ("feature", "enabled", "credits_per_unit", "limit_per_period")
ROLLOVER_FIELDS = ("percent", "cap", "expires_after_periods")
OVERAGE_FIELDS = ("policy", "limit", "unit_price")
TRIAL_FIELDS = ("days", "credits")
MAX_TRIAL_DAYS = 3650
OVERAGE_LIMIT_NEEDS_ALLOW = "must be 0 unless policy is allow"


def _unknown_keys(entry, raw, allowed, path=""):
    for key in raw:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            entry.fail(where, f"unknown field (expected one of: {', '.join(allowed)})")


def _credit_type(entry, raw):
    return {"code": entry.take("code", _code), "name": entry.take("name", _text(100))}


def _feature(entry, raw, known_credit_types):
    kind = entry.take("kind", _choice("metered", "boolean"), default="metered")
    credit_type = entry.take("credit_type", _optional(_code), default=None)
    if credit_type is not None and credit_type not in known_credit_types:
        entry.fail("credit_type", f"unknown credit type {credit_type!r}")
    if kind == "metered" and entry.raw.get("credit_type") is None:
        entry.fail("credit_type", "is required for a metered feature")
    return {
        "code": entry.take("code", _code),
        "name": entry.take("name", _text(100)),
        "description": entry.take("description", _text(5000, blank=True), default=""),
        "kind": kind,
        "credit_type": credit_type,
        "credits_per_unit": entry.take("credits_per_unit", _credits, default="1"),
        "unit_name": entry.take("unit_name", _text(32), default="unit"),
        "active": entry.take("active", _bool, default=True),
    }


def _plan(entry, raw, known_credit_types, known_features):
    problems_before = len(entry.errors)
    included = {}
    raw_included = entry.take("included_credits", _mapping, default={}) or {}
    for credit_type in sorted(raw_included, key=str):
        path = f"included_credits.{credit_type}"
        if credit_type not in known_credit_types:
            entry.fail(path, f"unknown credit type {credit_type!r}")
            continue
        try:
            included[credit_type] = _credits(raw_included[credit_type])
        except (DecimalInputError, ValueError) as exc:
            entry.fail(path, str(exc))

    values = {}
    raw_values = entry.take("standalone_values", _mapping, default={}) or {}
    for credit_type in sorted(raw_values, key=str):
        path = f"standalone_values.{credit_type}"
        if credit_type not in raw_included:
            entry.fail(path, f"{credit_type!r} is not in included_credits")
            continue
        try:
            values[credit_type] = _money(raw_values[credit_type])
        except (DecimalInputError, ValueError) as exc:
            entry.fail(path, str(exc))
    fee_value = entry.take("platform_fee_value", _money, default="0.00")
    if len(entry.errors) == problems_before:
        for problem in split_problems(
            fee_value=Decimal(fee_value),
            allowances=[
                SimpleNamespace(
                    code=code,
                    credits_per_period=Decimal(credits),
                    standalone_value=_dec(values.get(code)),
                )
                for code, credits in included.items()
            ],
            name=lambda a: a.code,
        ):
            entry.fail("standalone_values", problem)

    plan_features = []
    raw_features = entry.take("features", _list, default=[]) or []
    seen = set()
    for index, raw_pf in enumerate(raw_features):
        path = f"features[{index}]"
        if not isinstance(raw_pf, dict):
            entry.fail(path, "must be a mapping")
            continue
        sub = _Entry(f"{entry.label}: {path}", raw_pf, entry.errors)
        _unknown_keys(sub, raw_pf, PLAN_FEATURE_FIELDS)
        code = sub.take("feature", _code)
        if code is not None and code not in known_features:
            sub.fail("feature", f"unknown feature {code!r}")
        if code in seen:
            sub.fail("feature", f"{code!r} is listed twice")
        seen.add(code)
        plan_features.append(
            {
                "feature": code,
                "enabled": sub.take("enabled", _bool, default=True),
                "credits_per_unit": sub.take("credits_per_unit", _optional(_credits), default=None),
                "limit_per_period": sub.take("limit_per_period", _optional(_credits), default=None),
            }
        )
    plan_features.sort(key=lambda pf: pf["feature"] or "")

    raw_rollover = entry.take("rollover", _mapping, default={}) or {}
    rollover_entry = _Entry(f"{entry.label}: rollover", raw_rollover, entry.errors)
    _unknown_keys(rollover_entry, raw_rollover, ROLLOVER_FIELDS)
    rollover = {
        "percent": rollover_entry.take("percent", _percent, default="0"),
        "cap": rollover_entry.take("cap", _optional(_credits), default=None),
        "expires_after_periods": rollover_entry.take(
            "expires_after_periods", _optional(_whole(1)), default=1
        ),
    }

    raw_overage = entry.take("overage", _mapping, default={}) or {}
    overage_entry = _Entry(f"{entry.label}: overage", raw_overage, entry.errors)
    _unknown_keys(overage_entry, raw_overage, OVERAGE_FIELDS)
    overage = {
        "policy": overage_entry.take("policy", _choice("block", "allow"), default="block"),
        "limit": overage_entry.take("limit", _credits, default="0"),
        "unit_price": overage_entry.take("unit_price", _unit_price, default="0"),
    }
    if overage["policy"] == "block" and overage["limit"] not in (None, "0"):
        overage_entry.fail("limit", OVERAGE_LIMIT_NEEDS_ALLOW)

    trial = _trial(entry, raw_included)

    # The version an export was written from: for the reader. A change of terms publishes
    # the plan's next version whatever this says (docs/catalog.md, "Plan versions").
    entry.take("version", _optional(_whole(1)), default=None)
    return _price_fits(entry, {
        "code": entry.take("code", _code),
        "name": entry.take("name", _text(100)),
        "description": entry.take("description", _text(5000, blank=True), default=""),
        "billing_interval": entry.take(
            "billing_interval", _choice("month", "year"), default="month"
        ),
        "price": entry.take("price", _money),
        "currency": entry.take("currency", _currency, default="USD"),
        "public": entry.take("public", _bool, default=True),
        "active": entry.take("active", _bool, default=True),
        "included_credits": included,
        "standalone_values": values,
        "platform_fee_value": fee_value,
        "features": plan_features,
        "rollover": rollover,
        "overage": overage,
        **({"trial": trial} if trial else {}),
    })  # fmt: skip


def _trial(entry, included):
    """`{days, credits}`, or None for no trial (how a plan without one is written)."""
    raw = entry.take("trial", _mapping, default={}) or {}
    sub = _Entry(f"{entry.label}: trial", raw, entry.errors)
    _unknown_keys(sub, raw, TRIAL_FIELDS)
    days = sub.take("days", _whole(0), default=0)
    if days is not None and days > MAX_TRIAL_DAYS:
        sub.fail("days", f"must be at most {MAX_TRIAL_DAYS}")
    credits = {}
    for credit_type in sorted(sub.take("credits", _mapping, default={}) or {}, key=str):
        path = f"credits.{credit_type}"
        if credit_type not in included:
            sub.fail(path, f"{credit_type!r} is not in included_credits")
            continue
        try:
            credits[credit_type] = _credits(raw["credits"][credit_type])
        except (DecimalInputError, ValueError) as exc:
            sub.fail(path, str(exc))
    if not days:
        if credits and days == 0:
            sub.fail("days", "trial credits need trial days")
        return None
    return {"days": days, "credits": {k: v for k, v in credits.items() if Decimal(v) > 0}}


def _credit_pack(entry, raw, known_credit_types):
    credit_type = entry.take("credit_type", _code)
    if credit_type is not None and credit_type not in known_credit_types:
        entry.fail("credit_type", f"unknown credit type {credit_type!r}")
    return _price_fits(entry, {
        "code": entry.take("code", _code),
        "name": entry.take("name", _text(100)),
        "description": entry.take("description", _text(5000, blank=True), default=""),
        "credit_type": credit_type,
        "credits": entry.take("credits", _positive_credits),
        "price": entry.take("price", _money),
        "currency": entry.take("currency", _currency, default="USD"),
        "expires_after_days": entry.take("expires_after_days", _optional(_whole(1)), default=None),
        "public": entry.take("public", _bool, default=True),
        "active": entry.take("active", _bool, default=True),
    })  # fmt: skip


def _price_fits(entry, item):
    """The price must be a whole number of its currency's smallest unit (100.5 JPY is not)."""
    price = None if item["price"] is None else Decimal(item["price"])
    if problem := price_problem(price, item["currency"]):
        entry.fail("price", problem)
    return item


def _dec(value):
    return None if value is None else Decimal(value)


def _list(value):
    if not isinstance(value, list):
        raise ValueError("must be a list")
    return value


def validate_document(raw, *, existing_credit_types=(), existing_features=()):
    """Return `(document, errors)`: the canonical document, and every problem found.

    References may point at entries in the same file or already in the database.
    """
    errors = []
    if not isinstance(raw, dict):
        return None, ["the file must hold a mapping with the sections " + ", ".join(SECTIONS)]
    for key in raw:
        if key not in (*SECTIONS, "version"):
            errors.append(f"{key}: unknown section (expected version, {', '.join(SECTIONS)})")
    if raw.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        errors.append(f"version: only version {FORMAT_VERSION} is understood")

    sections = {}
    for section in SECTIONS:
        value = raw.get(section, [])
        if value is None:
            value = []
        if not isinstance(value, list):
            errors.append(f"{section}: must be a list")
            value = []
        sections[section] = value

    def code_of(item):
        return item.get("code") if isinstance(item, dict) else None

    known_credit_types = set(existing_credit_types) | {
        code_of(i) for i in sections["credit_types"] if isinstance(code_of(i), str)
    }
    known_features = set(existing_features) | {
        code_of(i) for i in sections["features"] if isinstance(code_of(i), str)
    }

    document = {"version": FORMAT_VERSION}
    for section in SECTIONS:
        items = []
        seen_codes = {}
        for index, item in enumerate(sections[section]):
            label = f"{section}[{index}]"
            if not isinstance(item, dict):
                errors.append(f"{label}: must be a mapping")
                continue
            if isinstance(item.get("code"), str):
                label += f" ({item['code']})"
            entry = _Entry(label, item, errors)
            _unknown_keys(entry, item, FIELDS[section])
            if section == "credit_types":
                value = _credit_type(entry, item)
            elif section == "features":
                value = _feature(entry, item, known_credit_types)
            elif section == "plans":
                value = _plan(entry, item, known_credit_types, known_features)
            else:
                value = _credit_pack(entry, item, known_credit_types)
            code = value["code"]
            if code is not None and code in seen_codes:
                entry.fail("code", f"duplicate code, also used by {section}[{seen_codes[code]}]")
            elif code is not None:
                seen_codes[code] = index
            items.append(value)
        document[section] = sorted(items, key=lambda v: v["code"] or "")
    return (None if errors else document), errors
