"""The replay across what changed within the range: a switch to another plan (with a trial
that converts), an end at Stripe, a cancellation at period end, a contract that ended. Each
account's terms are the ones it had at each moment, its grants close where reality closed
them, and the live catalog still reproduces the ledger."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.db import transaction

from apps.accounts.models import Subscription
from apps.billing.subscriptions import mark_past_due
from apps.catalog.contracts import put_contract
from apps.catalog.models import Plan
from apps.catalog.services import import_catalog
from apps.periods.services import (
    cancel_at_period_end,
    end_subscription,
    locked_subscription,
    put_account_on_plan,
)
from apps.simulation.replay import simulate
from tests.factories import AccountFactory

from .conftest import APR_1, FEB_1, FEB_5, JAN_5, MAR_5, Life, buy, catalog_file

FEB_10, FEB_15, FEB_20 = (FEB_5 + timedelta(days=n) for n in (5, 10, 15))
FEB_21, MAR_1 = FEB_20 + timedelta(days=1), MAR_5 - timedelta(days=4)
MAR_8, MAR_10, MAR_12 = (MAR_5 + timedelta(days=n) for n in (3, 5, 7))
# Lite: 200 credits a period, API calls at 2, no rollover, a 14-day trial with 50 credits.
LITE = """\
- code: lite
  name: Lite
  price: 10
  included_credits: {credits: 200}
  trial: {days: 14, credits: {credits: 50}}
  overage: {policy: allow, limit: 100, unit_price: "0.10"}
  features:
  - {feature: api_call, credits_per_unit: "2"}
"""


def catalog(**draft):
    return catalog_file(more_plans=LITE, **draft)


@pytest.fixture
def changes(db, time_machine):
    """Four accounts on Pro from January 5 (periods on the 5th), simulated over February and
    March:
    - switcher: 300 API calls on February 10; on February 20 put on Lite (its trial to March
      6, then periods from there); 40 calls in the trial, 150 on March 10;
    - churned: 1,400 calls on February 10 (100 over its 1,300: overdraft); its subscription
      ended at Stripe on February 20; a pack of 500 on the 21st, 200 calls on March 1;
    - canceller: 100 calls on February 10, cancelled at period end on the 15th (ends March
      5); a pack on March 10 and 50 calls;
    - contracted: a contract at 0.5 credits a call until February 20; 200 calls on February
      10 and 200 on March 1;
    - mover: moved to Lite on February 20 as Stripe's checkout does, from a start a few
      seconds before (a switch: Pro's credits roll over);
    - hesitant: cancelled at period end on the 15th, then put on Lite on the 20th (nothing
      rolls over: the cancel cleared it);
    - dunned: past due from February 20 (not renewed on March 5: its February period stays
      the current one, its quota counting from February 5), 2 exports on February 10 and one
      on March 8; ended at Stripe on March 12;
    - late: its March 5 renewal not run when it is put on Lite 20 seconds later (the switch
      catches it up first, then closes the new period)."""
    life = Life(time_machine).at(JAN_5)
    import_catalog(raw=catalog())
    pro = Plan.objects.get(code="pro")
    a = life.accounts
    for name in ("switcher", "churned", "canceller", "contracted", "mover", "hesitant", "dunned",
                 "late"):  # fmt: skip
        a[name] = AccountFactory(external_id=name)
        put_account_on_plan(account=a[name], plan=pro)
    put_contract(account=a["contracted"], raw={
        "ends_at": FEB_20.isoformat(),
        "features": [{"feature": "api_call", "credits_per_unit": "0.5"}],
    })  # fmt: skip
    life.at(FEB_5).at(FEB_10)
    life.use("switcher", "api_call", 300).use("churned", "api_call", 1400)
    life.use("canceller", "api_call", 100).use("contracted", "api_call", 200)
    life.use("dunned", "export", 2).use("mover", "api_call", 100).use("hesitant", "api_call", 100)
    life.use("late", "api_call", 500)
    life.at(FEB_15)
    cancel_at_period_end(account=a["canceller"])
    cancel_at_period_end(account=a["hesitant"])
    life.at(FEB_20)
    lite = Plan.objects.get(code="lite")
    put_account_on_plan(account=a["switcher"], plan=lite)
    put_account_on_plan(account=a["mover"], plan=lite, starts_at=FEB_20 - timedelta(seconds=5),
                        with_trial=False)  # fmt: skip
    put_account_on_plan(account=a["hesitant"], plan=lite, with_trial=False)
    end(a["churned"])
    mark_past_due(subscription=live(a["dunned"]))
    life.use("switcher", "api_call", 40)
    life.at(FEB_21)
    buy(a["churned"], 500, "10.00")
    life.at(MAR_1).use("churned", "api_call", 200).use("contracted", "api_call", 200)
    time_machine.move_to(MAR_5 + timedelta(seconds=20), tick=False)  # before the jobs run
    put_account_on_plan(account=a["late"], plan=lite, with_trial=False)
    life.at(MAR_5 + timedelta(minutes=1)).at(MAR_8).use("dunned", "export", 1)
    life.at(MAR_10)
    buy(a["canceller"], 100, "2.00")
    life.use("canceller", "api_call", 50).use("switcher", "api_call", 150)
    life.at(MAR_12)
    end(a["dunned"])
    life.at(MAR_5 + timedelta(days=15, minutes=1))  # Lite's periods from February 20 renew
    life.at(APR_1)
    return life


def live(account):
    return Subscription.objects.get(account=account, status__in=Subscription.LIVE_STATUSES)


def end(account):
    """Stripe ended the subscription (customer.subscription.deleted)."""
    with transaction.atomic():
        end_subscription(subscription=locked_subscription(pk=live(account).pk))


def replay(life, raw=None):
    names = {a.pk: name for name, a in life.accounts.items()}
    return {
        names[r.account_id]: r
        for r in simulate(raw=raw, account_ids=sorted(names), start=FEB_1, end=APR_1)
    }


def test_the_live_catalog_reproduces_the_ledger_across_changes(changes):
    results = replay(changes)
    for name, result in results.items():
        assert result.draft.as_dict() == result.real.as_dict(), name
    real = {name: r.real for name, r in results.items()}
    # What the scenario claims: 40 calls in the trial at Lite's 2 credits, 150 after it.
    assert real["switcher"].charged == D(300 + 80 + 300)
    assert real["churned"].overage == D(100)  # the overdraft its plan allowed
    # The canceller's: January's 700 not rolled over on February 5; on March 5, February's
    # 1,000 (none rolled over: cancelled) and the 200 left of what January rolled over.
    assert real["canceller"].breakage == D(700 + 1000 + 200)
    assert real["contracted"].charged == D(100 + 200)  # the contract, then the plan
    # A switch rolls Pro's credits over (300, the cap), a switch after a cancel does not.
    assert real["hesitant"].breakage - real["mover"].breakage == D(300)
    # Late: January's 700; on the catch-up, 500 of February's 800 left (300 roll over);
    # closing the March period it granted, 700 of its 1,000 (300 roll over: a switch).
    assert real["late"].breakage == D(700 + 500 + 700)
    # Dunned: on March 5 (not renewed), February's period rolls 300 over and its other 700
    # expire, with the 280 left of January's rollover.
    assert real["dunned"].breakage == D(700 + 700 + 280)


def test_a_draft_applies_to_a_plan_only_while_it_was_subscribed(changes):
    """Pro's API calls at 1.2 credits: the churned account's 1,400 calls while on Pro cost
    1,680 (380 of overdraft); its pack of 500 after the end pays that debt first, so its 200
    calls on March 1 (no plan: the feature's own price, 200) find 120 and are refused. The
    contracted account's calls under its contract stay at 0.5, those after it cost 1.2."""
    results = replay(changes, catalog(api_call="1.2"))
    churned = results["churned"].draft
    assert (churned.charged, churned.overage, churned.refused_funds) == (D(1680), D(380), 1)
    assert churned.first_refused_at == MAR_1
    assert results["contracted"].draft.charged == D(100 + 240)
    # The switcher's calls on Lite are Lite's: only the 300 on Pro cost more.
    assert results["switcher"].draft.charged == D(360 + 80 + 300)


def test_a_drafts_trial_credits(changes):
    """Lite's trial with 100 credits instead of 50: the switcher's 80 credits in the trial
    all come from it and its other 20 expire with it on March 6 (breakage 1,420, not 1,400);
    the 30 credits of Pro's rollover that paid for the trial's calls in reality pay on March
    10 for 30 that Lite's first period paid (1.50 USD less recognised)."""
    trial = LITE.replace("credits: {credits: 50}", "credits: {credits: 100}")
    [switcher] = simulate(raw=catalog_file(more_plans=trial),
                          account_ids=[changes.accounts["switcher"].pk], start=FEB_1,
                          end=APR_1)  # fmt: skip
    real, draft = switcher.real, switcher.draft
    assert (draft.charged, draft.breakage) == (real.charged, real.breakage + 20)
    assert draft.revenue["USD"] == real.revenue["USD"] - D("1.50")


def test_a_period_not_renewed_stays_current_for_quotas(changes):
    """Two exports a period: the dunned account's 2 of February 10 still count on March 8
    (past due, its February period was not renewed on March 5), so the export of March 8
    is refused, at its moment."""
    dunned = replay(changes, catalog(quota="2"))["dunned"]
    assert (dunned.real.refused_terms, dunned.draft.refused_terms) == (0, 1)
    assert dunned.draft.first_refused_at == MAR_8
