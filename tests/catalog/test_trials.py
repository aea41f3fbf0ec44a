"""A plan's trial in the catalog file: written only for plans that have one, read back exactly,
checked, and a pricing term like the others (a change on a version in use publishes)."""

import pytest
from django.core.management import CommandError

from apps.catalog.models import Plan
from apps.periods.services import put_account_on_plan
from tests.commands import run, write
from tests.factories import AccountFactory
from tests.ledger import D

pytestmark = pytest.mark.django_db

WITH_TRIAL = """
version: 1
credit_types:
- {code: credits, name: Credits}
plans:
- code: starter
  name: Starter
  price: 29
  included_credits: {credits: 2000}
  trial: {days: 14, credits: {credits: 300}}
"""


def load(tmp_path, text):
    return run("import_catalog", write(tmp_path, text))


def exported():
    return run("export_catalog")


def test_a_trial_is_imported_and_exported_back(tmp_path):
    load(tmp_path, WITH_TRIAL)
    plan = Plan.objects.get(code="starter")
    assert (plan.trial_days, plan.allowances.get().trial_credits) == (14, D(300))
    assert "  trial:\n    days: 14\n    credits:\n      credits: '300'\n" in exported()


def test_a_plan_without_a_trial_has_no_trial_entry(tmp_path):
    load(tmp_path, WITH_TRIAL.replace("  trial: {days: 14, credits: {credits: 300}}\n", ""))
    assert "trial" not in exported()


@pytest.mark.parametrize(
    ("trial", "message"),
    [
        ("{days: 0, credits: {credits: 5}}", "trial: days: trial credits need trial days"),
        ("{days: 7, credits: {gold: 5}}", "trial: credits.gold: 'gold' is not in included"),
        ("{days: -1}", "trial: days: must be a whole number of at least 0"),
        ("{weeks: 2}", "trial: weeks: unknown field"),
        ("{days: 4000}", "trial: days: must be at most 3650"),
    ],
)
def test_a_broken_trial_is_refused_naming_it(tmp_path, trial, message):
    with pytest.raises(CommandError, match="nothing was written") as refused:
        load(tmp_path, WITH_TRIAL.replace("{days: 14, credits: {credits: 300}}", trial))
    assert message in str(refused.value)


def test_a_longer_trial_on_a_plan_in_use_publishes_the_next_version(tmp_path):
    load(tmp_path, WITH_TRIAL)
    put_account_on_plan(account=AccountFactory(), plan=Plan.objects.get(code="starter"))
    report = load(tmp_path, WITH_TRIAL.replace("days: 14", "days: 30"))
    assert "version 2" in report
    assert list(Plan.objects.order_by("version").values_list("version", "trial_days")) == [
        (1, 14), (2, 30),
    ]  # fmt: skip
