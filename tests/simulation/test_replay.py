"""The replay (apps/simulation/replay.py): real usage through consume's and the renewal's
own rules, on wallets in memory, under the live catalog or a draft."""

from datetime import timedelta
from decimal import Decimal as D

from apps.catalog.models import Plan
from apps.catalog.services import import_catalog
from apps.periods.services import put_account_on_plan
from apps.simulation.replay import simulate
from tests.checksums import live_checksums
from tests.factories import AccountFactory

from .conftest import APR_1, FEB_1, FEB_5, FEB_10, FEB_12, JAN_5, MAR_5, Life, catalog_file

FEB_6, MAR_6, MAR_1 = FEB_5 + timedelta(days=1), MAR_5 + timedelta(days=1), FEB_1.replace(month=3)
FEB_11 = FEB_10 + timedelta(days=1)


def run(lived, raw=None):
    ids = sorted(a.pk for a in lived.accounts.values())
    names = {a.pk: name for name, a in lived.accounts.items()}
    return {names[r.account_id]: r for r in simulate(raw=raw, account_ids=ids, start=FEB_1,
                                                     end=APR_1, chunk_size=2)}  # fmt: skip


def test_replaying_the_live_catalog_reproduces_the_ledger(lived):
    """The simulator's own check: every account's figures, replayed, equal the ledger's."""
    results = run(lived)
    for name, result in results.items():
        assert result.draft.as_dict() == result.real.as_dict(), name
    real = {name: r.real for name, r in results.items()}
    # The scenario exercises what it claims to: overage billed, breakage, voids, revenue.
    assert real["heavy"].overage > 0 and real["heavy"].overage_billed["USD"] > 0
    # What was left of the promotion (100 - 50 - 30) and of the pack (500 - 100) ran out.
    assert real["packer"].breakage == D(420)
    assert real["light"].breakage > 0  # what the rollover did not carry
    assert all(r.revenue["USD"] > 0 for r in real.values())
    assert all(r.refused_funds == r.refused_terms == 0 for r in real.values())


def test_a_simulation_writes_nothing_live(lived):
    before = live_checksums()
    run(lived, catalog_file(api_call="2", credits="500"))
    assert live_checksums() == before


def draft_of(one_month, start, end, **draft):
    [result] = simulate(raw=catalog_file(**draft), account_ids=[one_month.accounts["a"].pk],
                        start=start, end=end)  # fmt: skip
    return result.real, result.draft


def test_a_cost_raise(one_month):
    """API calls at 1.5 credits: 1,380 credits of the 1,300 it had, 80 of them overage, billed
    at the period's end at 0.05 (4.00 USD); nothing left to expire. In reality 370 were left:
    half of them (185) rolled over, the rest expired."""
    real, draft = draft_of(one_month, FEB_6, MAR_6, api_call="1.5")
    assert (real.charged, real.overage, real.breakage) == (D(930), D(0), D(185))
    assert (draft.charged, draft.overage, draft.breakage) == (D(1380), D(80), D(0))
    assert (dict(real.overage_billed), dict(draft.overage_billed)) == ({}, {"USD": D("4.00")})
    assert draft.refused_funds == draft.refused_terms == 0


def test_a_smaller_plan(one_month):
    """500 credits a period instead of 1,000: from February 5, 500 and the 300 rolled over
    from January (whose other 700 expired, as in reality) cover 800 of the 930 used; 130
    are overage, not billed within the range."""
    real, draft = draft_of(one_month, FEB_1, MAR_1, credits="500")
    assert (real.charged, real.overage, real.breakage) == (D(930), D(0), D(700))
    assert (draft.charged, draft.overage, draft.breakage) == (D(930), D(130), D(700))
    assert dict(draft.overage_billed) == {}


def test_a_smaller_quota(one_month):
    """Two exports a period: the two of February 10 (before the range) count, so the one of
    February 12 is refused (403)."""
    real, draft = draft_of(one_month, FEB_11, MAR_1, quota="2")
    assert (real.charged, draft.charged) == (D(310), D(300))
    assert (draft.refused_terms, draft.refused_funds, draft.first_refused_at) == (1, 0, FEB_12)
    assert real.refused_terms == 0


def test_an_overage_change(one_month):
    """Overage billed at 0.10 doubles the cost raise's bill; blocked, the last 300 API calls
    (450 credits, 370 left) are refused (402) instead."""
    _, billed = draft_of(one_month, FEB_6, MAR_6, api_call="1.5", overage_price="0.10")
    assert (billed.overage, dict(billed.overage_billed)) == (D(80), {"USD": D("8.00")})
    _, blocked = draft_of(one_month, FEB_6, MAR_6, api_call="1.5", overage_limit=None)
    assert (blocked.charged, blocked.overage) == (D(930), D(0))
    assert (blocked.refused_funds, blocked.first_refused_at) == (1, FEB_12)


def test_a_renewal_that_ran_late_is_replayed_where_the_range_starts(db, time_machine):
    """The February 5 renewal ran only on February 10 (the job was down): from February 6,
    the replay renews that period as the range starts, and still reproduces the ledger."""
    life = Life(time_machine).at(JAN_5)
    import_catalog(raw=catalog_file())
    account = life.accounts["a"] = AccountFactory(external_id="a")
    put_account_on_plan(account=account, plan=Plan.objects.get(code="pro"))
    life.at(FEB_10).use("a", "api_call", 1200).at(MAR_5).at(APR_1)
    [result] = simulate(raw=None, account_ids=[account.pk], start=FEB_6, end=MAR_6)
    assert result.draft.as_dict() == result.real.as_dict()
    # January's 700 that did not roll over; of February's 100 left, the 50 that did not.
    assert result.real.breakage == D(750)


def test_a_contract(one_month):
    """A contract at 0.5 credits an API call: 300 + 30 + 150 = 480 credits of the 1,300; of
    the 820 left when the period ends, 300 roll over (the cap) and 520 expire."""
    account = one_month.accounts["a"]
    contract = {"features": [{"feature": "api_call", "credits_per_unit": "0.5"}]}
    [result] = simulate(raw=None, contracts={account.pk: contract}, account_ids=[account.pk],
                        start=FEB_6, end=MAR_6)  # fmt: skip
    assert (result.real.charged, result.draft.charged) == (D(930), D(480))
    assert (result.real.breakage, result.draft.breakage) == (D(185), D(520))


def test_what_expires_at_the_range_end_belongs_to_the_next_range(one_month):
    """The range ends at the March 5 boundary: the February credits that expire then are
    written off by the renewal at that moment, in the next range, and not replayed here."""
    account = one_month.accounts["a"]
    [result] = simulate(raw=None, account_ids=[account.pk], start=FEB_6, end=MAR_5)
    assert result.draft.as_dict() == result.real.as_dict()
    assert result.real.breakage == 0


def test_a_cost_that_is_not_exact_is_refused_as_the_api_would(db, time_machine):
    """1.5 calls at 0.000001 credits cost 0.0000015: more than 6 decimal places, which
    consume refuses (400) rather than round; the draft's refusal is counted as such."""
    life = Life(time_machine).at(JAN_5)
    import_catalog(raw=catalog_file())
    account = life.accounts["a"] = AccountFactory(external_id="a")
    put_account_on_plan(account=account, plan=Plan.objects.get(code="pro"))
    life.at(FEB_10).use("a", "api_call", "1.5").use("a", "api_call", 2).at(MAR_5)
    [result] = simulate(raw=catalog_file(api_call="0.000001"), account_ids=[account.pk],
                        start=FEB_6, end=MAR_5)  # fmt: skip
    draft = result.draft
    assert (draft.refused_input, draft.refused_terms, draft.refused_funds) == (1, 0, 0)
    assert (draft.events, draft.charged, draft.first_refused_at) == (1, D("0.000002"), FEB_10)
