from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.db.models import Q

from apps.core.errors import ChangedMeanwhile, InvalidInput

from .models import CreditPack, CreditType, Feature, Plan, PlanAllowance, PlanFeature
from .pricebook import PLAN_LISTING_FIELDS, SECTIONS, validate_document
from .selectors import catalog_document

MODELS = {
    "credit_types": CreditType,
    "features": Feature,
    "plans": Plan,
    "credit_packs": CreditPack,
}
SINGULAR = {
    "credit_types": "credit type",
    "features": "feature",
    "plans": "plan",
    "credit_packs": "credit pack",
}


@dataclass
class EntryChange:
    section: str
    code: str
    created: bool
    fields: list  # [(path, old, new)]
    publishes: int | None = None  # a plan's new version number, when its terms change in use

    def describe(self):
        kind = SINGULAR[self.section]
        if self.created:
            return f"+ {kind} {self.code} (new)"
        lines = [f"~ {kind} {self.code}"]
        if self.publishes:
            lines[0] += (
                f": version {self.publishes} (subscribers of version {self.publishes - 1} "
                "keep its terms until moved)"
            )
        lines += change_lines(self.fields)
        return "\n".join(lines)


@dataclass
class CatalogImport:
    changes: list = field(default_factory=list)
    unchanged: int = 0
    not_in_file: dict = field(default_factory=dict)  # section -> [codes]
    dry_run: bool = False

    def report(self):
        lines = [change.describe() for change in self.changes]
        for section, codes in self.not_in_file.items():
            lines.append(
                f"  {len(codes)} {SINGULAR[section]}(s) not in the file, left as they are: "
                + ", ".join(codes)
            )
        created = sum(c.created for c in self.changes)
        verb = "would be " if self.dry_run else ""
        lines.append(
            f"{created} {verb}created, {len(self.changes) - created} {verb}updated, "
            f"{self.unchanged} unchanged."
        )
        return "\n".join(lines)


def change_lines(changes):
    """`[(path, old, new)]` (a diff of two entries) as the lines a command prints."""
    return [f"    {path}: {_show(old)} -> {_show(new)}" for path, old, new in changes]


def _show(value):
    return "(none)" if value is None else repr(value)


def _flatten(value, prefix=""):
    """{"a": {"b": 1}, "features": [{"feature": "x", ...}]} -> {"a.b": 1, "features[x].…": …}"""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        out = {}
        for item in value:
            out.update(
                _flatten(
                    {k: v for k, v in item.items() if k != "feature"},
                    f"{prefix}[{item['feature']}]",
                )
            )
            out[f"{prefix}[{item['feature']}]"] = "listed"
        return out
    return {prefix: value}


def _diff(old, new):
    old_flat, new_flat = _flatten(old), _flatten(new)
    paths = [p for p in new_flat if p not in old_flat or old_flat[p] != new_flat[p]]
    paths += [p for p in old_flat if p not in new_flat]
    return [(p, old_flat.get(p), new_flat.get(p)) for p in paths]


def plan_diff(old, new):
    """`[(path, old, new)]` between two plan entries of the catalog file format."""
    return _diff(old, new)


def changes_terms(diff):
    """Whether a plan diff touches a pricing term (anything but the listing fields)."""
    return any(path.split(".")[0].split("[")[0] not in PLAN_LISTING_FIELDS for path, *_ in diff)


def in_use(plan):
    """Whether a subscription, live or ended, is or was on this version or is scheduled to
    move to it: its terms are then what those customers bought, and stay as they are."""
    return (
        Plan.objects.filter(pk=plan.pk)
        .filter(Q(subscriptions__isnull=False) | Q(scheduled_subscriptions__isnull=False))
        .exists()
    )


def import_catalog(*, raw, dry_run=False, acting_user=None, source="file", reason=None,
                   seen_plans=None, in_caller_transaction=False):  # fmt: skip
    """Upsert the catalog from a parsed file, by code, all or nothing. `seen_plans`
    (`{code: plan entry}`): the plans as the user saw them before this edit; if one is no
    longer so (saved by someone else since), ChangedMeanwhile and nothing is written.
    `in_caller_transaction`: for the pricing simulator, which writes a draft into its own
    copies of the catalog inside a transaction that always rolls back.

    Entries in the database but not in the file are reported and left alone: removing a plan
    that customers are on is a decision for a person, not a side effect of a file.
    """
    with transaction.atomic(durable=not in_caller_transaction):
        document, errors = validate_document(
            raw,
            existing_credit_types=CreditType.objects.values_list("code", flat=True),
            existing_features=Feature.objects.values_list("code", flat=True),
        )
        if errors:
            raise InvalidInput(
                f"The catalog file has {len(errors)} problem(s); nothing was written.",
                details={"catalog": errors},
            )
        codes = {section: {item["code"] for item in document[section]} for section in SECTIONS}
        # Why the lock: whether a version is in use, and what it holds, must not change
        # between the diff and the write; a second import of the same plans waits here and
        # then diffs against what the first wrote.
        plans = Plan.objects.filter(code__in=codes["plans"], current=True).order_by("pk")
        plans = {p.code: p for p in plans.select_for_update(of=("self",))}
        current = catalog_document(codes=codes)
        stored = {item["code"]: item for item in current["plans"]}
        for code, seen in (seen_plans or {}).items():
            if stored.get(code) != seen:
                raise ChangedMeanwhile(
                    f"the plan {code} was changed by someone else since you saw it. Open it "
                    "again to see their change, then make yours."
                )
        result = CatalogImport(dry_run=dry_run)
        for section in SECTIONS:
            before = {item["code"]: item for item in current[section]}
            for item in document[section]:
                old = before.get(item["code"])
                if old == item:
                    result.unchanged += 1
                    continue
                change = EntryChange(
                    section=section,
                    code=item["code"],
                    created=old is None,
                    fields=[] if old is None else _diff(old, item),
                )
                plan = plans.get(item["code"]) if section == "plans" else None
                if plan is not None and changes_terms(change.fields) and in_use(plan):
                    change.publishes = plan.version + 1
                result.changes.append(change)
        for section, model in MODELS.items():
            missing = model.objects.exclude(code__in=codes[section]).order_by("code")
            if model is Plan:
                missing = missing.filter(current=True)
            if missing := list(missing.values_list("code", flat=True)):
                result.not_in_file[section] = missing
        if dry_run or not result.changes:
            return result
        reason = reason or f"import_catalog {source}"
        _apply(document, result.changes, acting_user=acting_user, reason=reason)
        return result


def _save(instance, *, acting_user, reason):
    instance._history_user = acting_user
    instance._change_reason = reason
    instance.full_clean(validate_unique=False, validate_constraints=False)
    instance.save()
    return instance


def _upsert(model, code, values, *, acting_user, reason):
    found = model.objects.filter(code=code)
    if model is Plan:
        found = found.filter(current=True)
    instance = found.first() or model(code=code)
    for name, value in values.items():
        setattr(instance, name, value)
    return _save(instance, acting_user=acting_user, reason=reason)


def _dec(value):
    return None if value is None else Decimal(value)


def _apply(document, changes, *, acting_user, reason):
    changed = {(c.section, c.code) for c in changes}
    items = {
        section: [i for i in document[section] if (section, i["code"]) in changed]
        for section in SECTIONS
    }
    saved = {"acting_user": acting_user, "reason": reason}

    for item in items["credit_types"]:
        _upsert(CreditType, item["code"], {"name": item["name"]}, **saved)
    credit_types = {ct.code: ct for ct in CreditType.objects.all()}

    for item in items["features"]:
        _upsert(
            Feature,
            item["code"],
            {
                "name": item["name"],
                "description": item["description"],
                "kind": item["kind"],
                "credit_type": credit_types.get(item["credit_type"]),
                "credits_per_unit": Decimal(item["credits_per_unit"]),
                "unit_name": item["unit_name"],
                "active": item["active"],
            },
            **saved,
        )
    features = {f.code: f for f in Feature.objects.all()}

    publishes = {c.code: c.publishes for c in changes if c.section == "plans" and c.publishes}
    for item in items["plans"]:
        if item["code"] in publishes:
            _publish(item, credit_types, features, **saved)
            continue
        _write_plan(
            Plan.objects.filter(code=item["code"], current=True).first(),
            item,
            credit_types,
            features,
            **saved,
        )

    for item in items["credit_packs"]:
        _upsert(
            CreditPack,
            item["code"],
            {
                "name": item["name"],
                "description": item["description"],
                "credit_type": credit_types[item["credit_type"]],
                "credits": Decimal(item["credits"]),
                "price": Decimal(item["price"]),
                "currency": item["currency"],
                "expires_after_days": item["expires_after_days"],
                "public": item["public"],
                "active": item["active"],
            },
            **saved,
        )


def _write_plan(plan, item, credit_types, features, *, acting_user, reason):
    """Write a plan entry of the file format onto `plan` (None: a new plan) and its rows."""
    plan = plan or Plan(code=item["code"])
    values = {
        "name": item["name"],
        "description": item["description"],
        "billing_interval": item["billing_interval"],
        "price": Decimal(item["price"]),
        "currency": item["currency"],
        "public": item["public"],
        "active": item["active"],
        "rollover_percent": Decimal(item["rollover"]["percent"]),
        "rollover_cap": _dec(item["rollover"]["cap"]),
        "rollover_expires_after_periods": item["rollover"]["expires_after_periods"],
        "overage_policy": item["overage"]["policy"],
        "overage_limit": Decimal(item["overage"]["limit"]),
        "overage_unit_price": Decimal(item["overage"]["unit_price"]),
        "platform_fee_value": Decimal(item["platform_fee_value"]),
        "trial_days": item.get("trial", {}).get("days", 0),
    }
    for name, value in values.items():
        setattr(plan, name, value)
    _save(plan, acting_user=acting_user, reason=reason)
    saved = {"acting_user": acting_user, "reason": reason}
    trial_credits = item.get("trial", {}).get("credits", {})
    _sync_allowances(plan, item["included_credits"], item["standalone_values"], trial_credits,
                     credit_types, **saved)  # fmt: skip
    _sync_plan_features(plan, item["features"], features, **saved)
    return plan


def _publish(item, credit_types, features, *, acting_user, reason):
    """The plan's next version with `item`'s terms; it becomes the one new subscribers get."""
    # Why the lock: two publishes of one plan must not both take the next number (the
    # constraints would refuse the second; the lock makes it wait and number after).
    before = (
        Plan.objects.filter(code=item["code"], current=True)
        .order_by("pk")
        .select_for_update(of=("self",))
        .get()
    )
    before.current = False
    _save(before, acting_user=acting_user, reason=f"{reason}: superseded by v{before.version + 1}")
    plan = Plan(
        code=before.code,
        version=before.version + 1,
        low_balance_threshold=before.low_balance_threshold,
    )
    return _write_plan(plan, item, credit_types, features, acting_user=acting_user,
                       reason=f"{reason}: published v{plan.version}")  # fmt: skip


def save_plan_entry(*, entry, acting_user, reason, seen=None):
    """Save one plan entry of the catalog file format (the admin's edit, validated by the
    same rules as a file): in place on the current version, or as the next version when
    its terms change on a version in use. `seen`: the plan's entry as the user saw it before
    editing (the check is made under the lock the import takes). Returns
    `(plan, published)`."""
    result = import_catalog(
        raw={"plans": [entry]}, acting_user=acting_user, reason=reason,
        seen_plans=None if seen is None else {entry["code"]: seen},
    )  # fmt: skip
    plan = Plan.objects.get(code=entry["code"], current=True)
    return plan, any(c.publishes for c in result.changes)


def _sync_allowances(plan, included, values, trial, credit_types, *, acting_user, reason):
    existing = {a.credit_type.code: a for a in plan.allowances.select_related("credit_type")}
    for code, allowance in existing.items():
        if code not in included:
            allowance._history_user, allowance._change_reason = acting_user, reason
            allowance.delete()
    for code, credits in included.items():
        allowance = existing.get(code) or PlanAllowance(plan=plan, credit_type=credit_types[code])
        value = _dec(values.get(code))
        trial_credits = Decimal(trial.get(code, 0))
        if (
            allowance.pk
            and allowance.credits_per_period == Decimal(credits)
            and allowance.standalone_value == value
            and allowance.trial_credits == trial_credits
        ):
            continue
        allowance.credits_per_period = Decimal(credits)
        allowance.standalone_value = value
        allowance.trial_credits = trial_credits
        _save(allowance, acting_user=acting_user, reason=reason)


def _sync_plan_features(plan, wanted, features, *, acting_user, reason):
    existing = {pf.feature.code: pf for pf in plan.plan_features.select_related("feature")}
    wanted_codes = {pf["feature"] for pf in wanted}
    for code, plan_feature in existing.items():
        if code not in wanted_codes:
            plan_feature._history_user, plan_feature._change_reason = acting_user, reason
            plan_feature.delete()
    for item in wanted:
        plan_feature = existing.get(item["feature"]) or PlanFeature(
            plan=plan, feature=features[item["feature"]]
        )
        values = {
            "enabled": item["enabled"],
            "credits_per_unit": _dec(item["credits_per_unit"]),
            "limit_per_period": _dec(item["limit_per_period"]),
        }
        if plan_feature.pk and all(getattr(plan_feature, k) == v for k, v in values.items()):
            continue
        for name, value in values.items():
            setattr(plan_feature, name, value)
        _save(plan_feature, acting_user=acting_user, reason=reason)
