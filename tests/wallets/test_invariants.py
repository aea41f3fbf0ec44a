"""Property-based: any interleaving of ledger operations — consumes, reservations, grants,
corrections, refunds, expiry, period ends with or without the renewal job, plan changes,
revenue posting at any moment — keeps every invariant of docs/ledger.md, and revenue agrees
with the ledger (docs/revenue.md)."""

from contextlib import suppress
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import transaction
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

from apps.accounts.models import Subscription
from apps.core.errors import DomainError
from apps.periods.services import (
    cancel_at_period_end,
    change_plan_at_period_end,
    put_account_on_plan,
    renew_due_subscriptions,
    resume_subscription,
)
from apps.revenue.posting import post_revenue
from apps.revenue.services import record_cash_refund
from apps.revenue.verify import verify_revenue
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
from apps.wallets.services import adjust, claw_back, expire_grants, grant_credits, void_grant
from tests.factories import (
    AccountFactory,
    CreditTypeFactory,
    FeatureFactory,
    PlanAllowanceFactory,
    PlanFactory,
    PlanFeatureFactory,
)

amounts = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(60), places=6)
round_amounts = st.integers(min_value=1, max_value=40).map(Decimal)
quantities = st.one_of(round_amounts, amounts)
CREDIT, CENT = Decimal("0.000001"), Decimal("0.01")


class LedgerMachine(RuleBasedStateMachine):
    reservations = Bundle("reservations")
    grants = Bundle("grants")

    @initialize(
        overdraft=st.sampled_from([Decimal(0), Decimal(25)]),
        price=st.sampled_from([Decimal(1), Decimal("0.5"), Decimal("2.5")]),
        included=st.sampled_from([Decimal(0), Decimal(40), Decimal("33.333333")]),
        percent=st.sampled_from([Decimal(0), Decimal(50), Decimal("33.33"), Decimal(100)]),
        cap=st.sampled_from([None, Decimal(10)]),
        after=st.sampled_from([None, 1, 2]),
    )
    def setup(self, overdraft, price, included, percent, cap, after):
        self.clock = time_machine.travel(timezone.now(), tick=False)
        self.coordinates = self.clock.start()
        self.credit_type = CreditTypeFactory()
        feature = FeatureFactory(credits_per_unit=price)
        self.feature = feature.code
        policy = "allow" if overdraft else "block"
        self.plans = []
        for credits in (included, included * 2):
            plan = PlanFactory(
                # Part of the price is a platform fee, recognised over the period (and at
                # once when a plan change cuts the period short).
                price=Decimal("30.00"),
                platform_fee_value=Decimal(10),
                overage_policy=policy,
                overage_limit=overdraft,
                rollover_percent=percent,
                rollover_cap=cap,
                rollover_expires_after_periods=after,
            )
            PlanFeatureFactory(plan=plan, feature=feature)
            if credits:
                PlanAllowanceFactory(
                    plan=plan, credit_type=self.credit_type, credits_per_period=credits,
                    standalone_value=Decimal(20),
                )  # fmt: skip
            self.plans.append(plan)
        self.overdraft = overdraft
        self.account = AccountFactory()
        put_account_on_plan(account=self.account, plan=self.plans[0])

    @rule(hours_after=st.integers(0, 30), run_renewal=st.booleans())
    def period_ends(self, hours_after, run_renewal):
        """The period ends; renewal runs, or a consume gets there first (lazy close)."""
        subscription = Subscription.objects.filter(
            account=self.account, status__in=Subscription.LIVE_STATUSES
        ).first()
        if subscription is None:
            return
        self.coordinates.move_to(subscription.current_period_end + timedelta(hours=hours_after))
        if run_renewal:
            renew_due_subscriptions()

    @rule(plan=st.integers(0, 1), now=st.booleans())
    def change_plan(self, plan, now):
        with suppress(DomainError):
            if now:
                put_account_on_plan(account=self.account, plan=self.plans[plan])
            else:
                change_plan_at_period_end(account=self.account, plan=self.plans[plan])

    @rule(cancel=st.booleans())
    def cancel_or_resume(self, cancel):
        with suppress(DomainError):
            if cancel:
                cancel_at_period_end(account=self.account)
            else:
                resume_subscription(account=self.account)

    def teardown(self):
        if hasattr(self, "account"):
            # Revenue agrees with the ledger whatever happened (docs/revenue.md): every grant
            # releases exactly its basis, every month satisfies the identity.
            post_revenue()
            assert verify_revenue() == []
        if hasattr(self, "clock"):
            self.clock.stop()

    @rule(target=grants, amount=quantities, days=st.none() | st.integers(1, 5),
          priority=st.sampled_from([10, 100]),
          unit_price=st.sampled_from(["0", "0.01", "0.37", "1.333"]))  # fmt: skip
    def grant(self, amount, days, priority, unit_price):
        grant, _ = grant_credits(
            account=self.account,
            credit_type=self.credit_type,
            amount=amount,
            source="purchase" if unit_price != "0" else "promo",
            unit_price=unit_price,
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

    @rule(grant=grants, share=st.sampled_from([Decimal("0.25"), Decimal("0.5"), Decimal(1)]))
    def refund(self, grant, share):
        """A refund of part of what was paid: the credits left claw back, the cash beyond
        them comes out of recognised revenue."""
        fresh = CreditGrant.objects.get(pk=grant.pk)
        with transaction.atomic():
            claw_back(grant=fresh, credits=(fresh.amount * share).quantize(CREDIT),
                      reason="refund")  # fmt: skip
            record_cash_refund(grant=fresh, amount=(fresh.basis_amount * share).quantize(CENT),
                               reason="refund")  # fmt: skip

    @rule()
    def post(self):
        post_revenue()

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
