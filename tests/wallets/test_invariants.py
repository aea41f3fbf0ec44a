"""Property-based: any interleaving of ledger operations keeps every invariant of DESIGN.md."""

from contextlib import suppress
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from apps.core.errors import DomainError
from apps.usage.services import (
    ConsumeRequest,
    commit_reservation,
    consume,
    consume_batch,
    release_expired_reservations,
    release_reservation,
    reserve,
)
from apps.wallets.models import CreditGrant, Reservation, Wallet
from apps.wallets.selectors import ledger_violations
from apps.wallets.services import adjust, expire_grants, grant_credits, void_grant
from tests.factories import (
    AccountFactory,
    CreditTypeFactory,
    FeatureFactory,
    PlanFactory,
    PlanFeatureFactory,
)

amounts = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(60), places=6)
round_amounts = st.integers(min_value=1, max_value=40).map(Decimal)
quantities = st.one_of(round_amounts, amounts)


class LedgerMachine(RuleBasedStateMachine):
    reservations = Bundle("reservations")
    grants = Bundle("grants")

    @initialize(
        overdraft=st.sampled_from([Decimal(0), Decimal(25)]),
        price=st.sampled_from([Decimal(1), Decimal("0.5"), Decimal("2.5")]),
    )
    def setup(self, overdraft, price):
        self.clock = time_machine.travel(timezone.now(), tick=False)
        self.coordinates = self.clock.start()
        self.credit_type = CreditTypeFactory()
        feature = FeatureFactory(credits_per_unit=price)
        self.feature = feature.code
        policy = "allow" if overdraft else "block"
        plan = PlanFactory(overage_policy=policy, overage_limit=overdraft)
        PlanFeatureFactory(plan=plan, feature=feature)
        self.overdraft = overdraft
        self.account = AccountFactory()
        from apps.accounts.services import put_account_on_plan

        put_account_on_plan(account=self.account, plan=plan, starts_at=timezone.now())

    def teardown(self):
        if hasattr(self, "clock"):
            self.clock.stop()

    @rule(target=grants, amount=quantities, days=st.none() | st.integers(1, 5),
          priority=st.sampled_from([10, 100]))  # fmt: skip
    def grant(self, amount, days, priority):
        grant, _ = grant_credits(
            account=self.account,
            credit_type=self.credit_type,
            amount=amount,
            source="promo",
            priority=priority,
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
        return grant

    @rule(quantity=quantities)
    def consume(self, quantity):
        with suppress(DomainError):
            consume(account=self.account, feature=self.feature, quantity=quantity)

    @rule(quantities=st.lists(quantities, min_size=1, max_size=6))
    def batch(self, quantities):
        requests = [
            ConsumeRequest.build(account=self.account, feature=self.feature, quantity=q)
            for q in quantities
        ]
        consume_batch(requests=requests)

    @rule(target=reservations, quantity=quantities, ttl=st.sampled_from([60, 7200]))
    def reserve(self, quantity, ttl):
        try:
            reservation, _ = reserve(
                account=self.account, feature=self.feature, quantity=quantity, ttl_seconds=ttl
            )
            return reservation.pk
        except DomainError:
            return None

    @rule(reservation=consumes(reservations), quantity=quantities)
    def commit(self, reservation, quantity):
        if reservation is not None:
            with suppress(DomainError):
                commit_reservation(reservation_id=reservation, quantity=quantity)

    @rule(reservation=consumes(reservations))
    def release(self, reservation):
        if reservation is not None:
            with suppress(DomainError):
                release_reservation(reservation_id=reservation)

    @rule(hours=st.integers(1, 72))
    def time_passes(self, hours):
        self.coordinates.shift(timedelta(hours=hours))
        expire_grants()
        release_expired_reservations()

    @rule(grant=grants)
    def void(self, grant):
        with suppress(DomainError):
            void_grant(grant=CreditGrant.objects.get(pk=grant.pk), reason="test")

    @rule(amount=st.one_of(quantities, quantities.map(lambda q: -q)))
    def adjust(self, amount):
        with suppress(DomainError):
            adjust(account=self.account, credit_type=self.credit_type, amount=amount, reason="t")

    @invariant()
    def ledger_is_sound(self):
        if not hasattr(self, "account"):
            return
        assert ledger_violations(account=self.account) == []
        wallet = Wallet.objects.filter(account=self.account).first()
        if wallet is not None:
            # DESIGN invariant 3: the balance never goes below the allowed overdraft. (Held
            # credits can outlive their funding: a void or an expiry takes a grant whatever
            # is held against it; the commit then needs available credits.)
            assert wallet.balance >= -self.overdraft
            open_holds = sum(
                r.credits_held for r in Reservation.objects.filter(wallet=wallet, status="held")
            )
            assert wallet.held == open_holds


@pytest.mark.django_db
@pytest.mark.usefixtures("consume_path")
def test_any_interleaving_keeps_the_ledger_invariants():
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
