"""Pricing as code: import_catalog / export_catalog (docs/catalog.md)."""

from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import CommandError

from apps.catalog.models import CreditPack, CreditType, Feature, Plan, PlanFeature
from tests.catalog.conftest import MINIMAL
from tests.commands import run, write

DEMO = settings.BASE_DIR / "demo" / "catalog.yaml"
pytestmark = pytest.mark.django_db


def counts():
    return (
        CreditType.objects.count(),
        Feature.objects.count(),
        Plan.objects.count(),
        CreditPack.objects.count(),
        PlanFeature.objects.count(),
    )


def test_demo_catalog_round_trips_exactly_through_import_and_export():
    run("import_catalog", str(DEMO))
    assert run("export_catalog") == DEMO.read_text()


def test_reimporting_the_same_file_changes_nothing():
    run("import_catalog", str(DEMO))
    history_rows = Plan.history.count()
    output = run("import_catalog", str(DEMO))
    assert "0 created, 0 updated, 14 unchanged." in output
    assert Plan.history.count() == history_rows


def test_export_as_json_imports_back_to_the_same_catalog(tmp_path):
    run("import_catalog", str(DEMO))
    json_file = write(tmp_path, run("export_catalog", "--format", "json"), "catalog.json")
    assert "14 unchanged" in run("import_catalog", json_file)


def test_import_creates_every_entry_with_exact_decimals(tmp_path):
    run("import_catalog", write(tmp_path, MINIMAL))
    plan = Plan.objects.get(code="starter")
    assert plan.price == Decimal("29.00")
    assert plan.allowances.get().credits_per_period == Decimal("2000")
    plan_feature = plan.plan_features.get()
    assert plan_feature.limit_per_period == Decimal("100")
    assert Feature.objects.get(code="api_call").credits_per_unit == Decimal("0.5")


def test_dry_run_prints_the_diff_and_writes_nothing(tmp_path):
    run("import_catalog", write(tmp_path, MINIMAL))
    changed = MINIMAL.replace("price: 29", "price: 39").replace("credits: 2000", "credits: 2500")
    output = run("import_catalog", write(tmp_path, changed), "--dry-run")
    assert "~ plan starter" in output
    assert "price: '29.00' -> '39.00'" in output
    assert "included_credits.credits: '2000' -> '2500'" in output
    assert "0 would be created, 1 would be updated" in output
    assert Plan.objects.get(code="starter").price == Decimal("29.00")


def test_import_updates_changed_entries_and_records_history(tmp_path):
    run("import_catalog", write(tmp_path, MINIMAL))
    run("import_catalog", write(tmp_path, MINIMAL.replace("price: 29", "price: 39")))
    plan = Plan.objects.get(code="starter")
    assert plan.price == Decimal("39.00")
    latest = plan.history.first()
    assert latest.history_change_reason == "import_catalog catalog.yaml"
    assert latest.prev_record.price == Decimal("29.00")


def test_plan_features_missing_from_the_file_are_removed_from_the_plan(tmp_path):
    run("import_catalog", write(tmp_path, MINIMAL))
    run("import_catalog", write(tmp_path, MINIMAL.replace(
        "  features:\n  - {feature: api_call, limit_per_period: 100}\n", ""
    )))  # fmt: skip
    assert not PlanFeature.objects.exists()


def test_entries_not_in_the_file_are_reported_and_left_alone(tmp_path):
    run("import_catalog", str(DEMO))
    output = run("import_catalog", write(tmp_path, MINIMAL))
    assert "3 plan(s) not in the file, left as they are: free, pro, pro_annual" in output
    assert Plan.objects.filter(code="pro").exists()


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (
            ("credit_type: credits, credits_per_unit", "credit_type: tokens, credits_per_unit"),
            "features[0] (api_call): credit_type: unknown credit type 'tokens'",
        ),
        (("price: 29", "price: -29"), "plans[0] (starter): price: must not be negative"),
        (
            ('credits_per_unit: "0.5"', "credits_per_unit: 0.1234567"),
            "features[0] (api_call): credits_per_unit: has more than 6 decimal places",
        ),
        (
            (
                "- {code: pack_1k,",
                "- {code: pack_1k, name: dup, credit_type: credits, credits: 1, "
                "price: 1}\n- {code: pack_1k,",
            ),
            "credit_packs[1] (pack_1k): code: duplicate code, also used by credit_packs[0]",
        ),
        (("price: 12}", "price: 12.001}"), "credit_packs[0] (pack_1k): price: has more than 2"),
        (("credits: 1000,", "credits: 0,"), "credits: must be greater than zero"),
        (
            ("{feature: api_call,", "{feature: nope,"),
            "features[0]: feature: unknown feature 'nope'",
        ),
        (("  price: 29\n", "  price: 29\n  colour: red\n"), "plans[0] (starter): colour: unknown"),
        (("name: Starter", "name: Starter\n  name: Again"), "duplicate key 'name'"),
    ],
)
def test_invalid_file_names_the_offending_entry_and_writes_nothing(tmp_path, mutation, message):
    run("import_catalog", str(DEMO))
    before = counts()
    broken = MINIMAL.replace(*mutation)
    assert broken != MINIMAL
    with pytest.raises(CommandError) as excinfo:
        run("import_catalog", write(tmp_path, broken))
    assert message in str(excinfo.value)
    assert "nothing was written" in str(excinfo.value)
    assert counts() == before
    assert not Feature.objects.filter(code="api_call", credits_per_unit=Decimal("0.5")).exists()


def test_every_problem_is_listed_not_only_the_first(tmp_path):
    broken = MINIMAL.replace("price: 29", "price: -1").replace("price: 12", "price: x")
    with pytest.raises(CommandError) as excinfo:
        run("import_catalog", write(tmp_path, broken))
    assert "2 problem(s)" in str(excinfo.value)
    assert counts() == (0, 0, 0, 0, 0)


def test_a_file_that_is_not_yaml_is_rejected_clearly(tmp_path):
    with pytest.raises(CommandError, match="not valid YAML"):
        run("import_catalog", write(tmp_path, "plans: [unclosed"))


def test_a_missing_file_is_rejected_clearly():
    with pytest.raises(CommandError, match="no such file"):
        run("import_catalog", "/nonexistent/catalog.yaml")


def test_overage_limit_requires_the_allow_policy(tmp_path):
    broken = MINIMAL.replace("  price: 29\n", "  price: 29\n  overage: {limit: 10}\n")
    with pytest.raises(CommandError, match="overage: limit: must be 0 unless policy is allow"):
        run("import_catalog", write(tmp_path, broken))


def _yaml_blocks(markdown):
    return [block.split("```", 1)[0] for block in markdown.split("```yaml\n")[1:]]


def test_docs_show_the_demo_catalog_exactly():
    docs = (settings.BASE_DIR / "docs" / "catalog.md").read_text()
    assert DEMO.read_text() in _yaml_blocks(docs)


def test_docs_short_example_matches_the_demo_starter_plan(tmp_path):
    run("import_catalog", str(DEMO))
    short = _yaml_blocks((settings.BASE_DIR / "docs" / "catalog.md").read_text())[-1]
    assert "0 created, 0 updated, 1 unchanged." in run("import_catalog", write(tmp_path, short))
