"""Two months of real traffic on a fixed calendar, lived through the real services and jobs,
for the replay's tests: the ledger it leaves is what a simulation of the live catalog must
reproduce, and what a draft is compared with."""

from contextlib import suppress
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.catalog.models import CreditType, Plan
from apps.catalog.pricebook import read_document
from apps.catalog.services import import_catalog
from apps.core.errors import DomainError
from apps.periods.services import put_account_on_plan, renew_due_subscriptions
from apps.usage.services import consume
from apps.wallets.models import CreditGrant
from apps.wallets.services import adjust, expire_grants, grant_credits, void_grant
from tests.factories import AccountFactory

D = Decimal
JAN_5 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FEB_1 = datetime(2026, 2, 1, tzinfo=UTC)
FEB_5 = datetime(2026, 2, 5, 9, 0, tzinfo=UTC)
MAR_5 = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
APR_1 = datetime(2026, 4, 1, tzinfo=UTC)


def catalog_file(*, api_call="1", export="10", credits="1000", quota="3", overage_price="0.05",
                 overage_limit="500", percent="50", price="30", more_plans=""):  # fmt: skip
    """The live catalog, and any draft of it, in the import format (`overage_limit` None:
    overage blocked; `more_plans`: further plans, as YAML list items)."""
    overage = (
        f'{{policy: allow, limit: {overage_limit}, unit_price: "{overage_price}"}}'
        if overage_limit is not None
        else "{policy: block}"
    )
    return read_document(
        f"""
version: 1
credit_types:
- {{code: credits, name: Credits}}
features:
- {{code: api_call, name: API call, credit_type: credits, credits_per_unit: "1"}}
- {{code: export, name: Export, credit_type: credits, credits_per_unit: "10"}}
plans:
- code: pro
  name: Pro
  price: {price}
  included_credits: {{credits: {credits}}}
  rollover: {{percent: {percent}, cap: 300, expires_after_periods: 1}}
  overage: {overage}
  features:
  - {{feature: api_call, credits_per_unit: "{api_call}"}}
  - {{feature: export, credits_per_unit: "{export}", limit_per_period: {quota}}}
{more_plans}""",
        filename="catalog.yaml",
    )


class Life:
    """The world's clock and jobs: every step runs the renewal and expiry jobs first, as
    beat does every minute."""

    def __init__(self, time_machine):
        self.time_machine = time_machine
        self.accounts = {}

    def at(self, moment):
        self.time_machine.move_to(moment, tick=False)
        renew_due_subscriptions()
        expire_grants()
        return self

    def use(self, name, feature, quantity, *, times=1):
        for _ in range(times):
            # Refused in reality: not stored, so not replayed.
            with suppress(DomainError):
                consume(account=self.accounts[name], feature=feature, quantity=D(quantity))
        return self


def buy(account, credits, price, *, days=None, source=CreditGrant.Source.PURCHASE):
    grant, _ = grant_credits(
        account=account,
        credit_type=CreditType.objects.get(code="credits"),
        amount=D(credits),
        source=source,
        unit_price=D(price) / D(credits) if price else 0,
        basis_amount=D(price) if price else None,
        expires_at=datetime.now(UTC) + timedelta(days=days) if days else None,
    )
    return grant


@pytest.fixture
def lived(db, time_machine):
    """Five accounts from January 5 to April 1, 2026 (periods start on the 5th): the range
    simulated is February and March."""
    life = Life(time_machine).at(JAN_5)
    import_catalog(raw=catalog_file())
    pro = Plan.objects.get(code="pro")
    for name in ("heavy", "light", "packer", "voided", "adjusted"):
        life.accounts[name] = AccountFactory(external_id=name)
    for name in ("heavy", "light", "voided", "adjusted"):
        put_account_on_plan(account=life.accounts[name], plan=pro)
    a = life.accounts
    buy(a["packer"], 100, None, days=36, source=CreditGrant.Source.PROMO)  # to Feb 10
    buy(a["packer"], 500, "10.00", days=60)
    life.use("heavy", "api_call", 900).use("light", "api_call", 100).use("packer", "api_call", 50)

    life.at(FEB_1 + timedelta(days=1))
    life.use("packer", "api_call", 30).use("heavy", "api_call", 50)
    pack = buy(a["voided"], 200, "4.00")
    life.at(FEB_5)  # renewals: heavy rolls over 25 of its 50 left, light 300 (the cap)
    life.use("heavy", "api_call", 1200)  # 1,025 left: 175 of overage
    life.use("heavy", "export", 1, times=4)  # the 4th is over the quota
    life.use("light", "api_call", 100).use("voided", "api_call", 1150)
    life.at(FEB_5 + timedelta(days=6))  # the promo expired on the 10th
    life.use("packer", "api_call", 100).use("light", "export", 2)
    void_grant(grant=pack, reason="refunded")
    adjust(account=a["adjusted"], credit_type=pack.wallet.credit_type, amount=D(-50),
           reason="correction")  # fmt: skip
    life.at(MAR_5)  # heavy's 215 of overage billed at 0.05
    life.use("heavy", "api_call", 400).use("light", "api_call", 250).use("heavy", "export", 2)
    life.at(MAR_5 + timedelta(days=10)).use("packer", "api_call", 200)
    life.at(APR_1)
    return life


FEB_10 = datetime(2026, 2, 10, 9, 0, tzinfo=UTC)
FEB_12 = datetime(2026, 2, 12, 9, 0, tzinfo=UTC)


@pytest.fixture
def one_month(db, time_machine):
    """One account on Pro from January 5, nothing used in January (so 300 credits roll over
    on February 5, the cap); on February 10 600 API calls and 2 exports, on February 12 one
    export and 300 API calls: 930 credits of the 1,300 it had."""
    life = Life(time_machine).at(JAN_5)
    import_catalog(raw=catalog_file())
    account = life.accounts["a"] = AccountFactory(external_id="a")
    put_account_on_plan(account=account, plan=Plan.objects.get(code="pro"))
    life.at(FEB_5).at(FEB_10).use("a", "api_call", 600).use("a", "export", 1, times=2)
    life.at(FEB_12).use("a", "export", 1).use("a", "api_call", 300)
    life.at(MAR_5).at(APR_1)
    return life
