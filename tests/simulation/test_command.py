"""`manage.py simulate_pricing`: the simulator in a terminal or a CI job; it writes nothing."""

import csv
import json
import re
from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management.base import CommandError

from tests.checksums import live_checksums
from tests.commands import run, write

from .test_runs import DRAFT

FEB = ("--from", "2026-02-06", "--to", "2026-03-05")


def test_the_table_shows_totals_side_by_side_and_the_most_affected(one_month, tmp_path):
    before = live_checksums()
    out = run("simulate_pricing", "--catalog", write(tmp_path, DRAFT), *FEB)
    assert live_checksums() == before  # not even a run is stored
    assert "usage from 2026-02-06 to 2026-03-05, 1 accounts." in out
    assert "features[api_call].credits_per_unit: '1' -> '1.5'" in out
    columns = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line.strip())
                                                 for line in out.splitlines())}  # fmt: skip
    assert columns["Credits charged"] == ["930 credits", "1,380 credits"]
    assert columns["Overage billed"] == ["—", "4.00 USD"]
    assert columns["Breakage (expired)"] == ["185 credits", "0 credits"]
    assert "1 of 1 accounts change." in out
    assert "  a: +450 credits (+48.4%)" in out


def test_csv_and_json_carry_every_line(one_month, tmp_path):
    draft = write(tmp_path, DRAFT)
    [line] = csv.DictReader(StringIO(run("simulate_pricing", "--catalog", draft, *FEB,
                                         "--format", "csv")))  # fmt: skip
    assert (line["account"], D(line["credits_real"]), D(line["credits_draft"])) == ("a", 930, 1380)
    assert (line["overage_billed_draft"], line["currency"]) == ("4.00 USD", "USD")
    document = json.loads(run("simulate_pricing", "--catalog", draft, *FEB, "--format", "json"))
    assert (document["accounts"], document["accounts_changed"]) == (1, 1)
    assert D(document["totals"]["draft"]["charged"]) == 1380
    assert document["lines"][0]["credits_change_percent"] == "48.4"


def test_bad_input_is_named(one_month, tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run("simulate_pricing", "--catalog", str(tmp_path / "missing.yaml"))
    with pytest.raises(CommandError, match="problem"):
        run("simulate_pricing", "--catalog", write(tmp_path, DRAFT.replace("30", "-3")), *FEB)
    with pytest.raises(CommandError, match="both --from and --to"):
        run("simulate_pricing", "--catalog", write(tmp_path, DRAFT), "--from", "2026-02-01")
    with pytest.raises(CommandError, match="A chunk holds 1 to 50,000 accounts"):
        run("simulate_pricing", "--catalog", write(tmp_path, DRAFT), *FEB, "--chunk-size", "0")
    with pytest.raises(CommandError, match="not a date"):
        run("simulate_pricing", "--catalog", write(tmp_path, DRAFT), "--from", "Feb 1",
            "--to", "2026-02-28")  # fmt: skip


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_workers_replay_chunks_in_processes_of_their_own(lived, tmp_path):
    """Two processes, a chunk each (one account per chunk): the same lines as one."""
    draft = write(tmp_path, DRAFT)
    args = ("simulate_pricing", "--catalog", draft, "--from", "2026-02-01", "--to",
            "2026-03-31", "--format", "csv", "--chunk-size", "1")  # fmt: skip
    alone = run(*args)
    assert run(*args, "--workers", "2") == alone
    assert len(alone.splitlines()) == 1 + len(lived.accounts)


def test_contracts_alone_are_tried_on_the_live_catalog(one_month, tmp_path):
    contracts = write(tmp_path, 'a: {features: [{feature: api_call, credits_per_unit: "0.5"}]}',
                      name="contracts.yaml")  # fmt: skip
    out = run("simulate_pricing", "--contracts", contracts, *FEB)
    assert "~ contract for account a" in out
    assert "  a: -450 credits (-48.4%)" in out
    with pytest.raises(CommandError, match="No account has the external id 'nobody'"):
        run("simulate_pricing", "--contracts", write(tmp_path, "nobody: {}", name="c.yaml"), *FEB)
    with pytest.raises(CommandError, match="Give a draft"):
        run("simulate_pricing", *FEB)
