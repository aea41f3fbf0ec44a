"""Staff change an account's plan (the account page's *Put on plan / change plan…*,
docs/periods.md "Plan changes"): what the change will do, said before it is made
(`describe_plan_change`), and the change itself (`change_account_plan`), each through the
periods' services, or through Stripe for a Stripe subscription (as the billing page's switch).

Which way a change goes:

- no live plan: on the plan now, invoiced by hand (no Stripe): `put_account_on_plan`;
- a manual plan: replaced now (`put_account_on_plan`) or at its period end
  (`change_plan_at_period_end`);
- a Stripe subscription: at its period end only, through Stripe (`switch_stripe_plan`): its
  next invoice bills the new plan and Stripe's invoice.paid starts it.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction

from apps.accounts.models import Subscription
from apps.core import clock
from apps.core.errors import InvalidInput
from apps.core.history import change_reason
from apps.core.humanize import credits, money
from apps.periods.calendar import boundary
from apps.periods.services import change_plan_at_period_end, put_account_on_plan, trial_days_for

from .checkout import switch_stripe_plan

NOW, PERIOD_END = "now", "period_end"
WHEN = {NOW: "Now", PERIOD_END: "At the end of the current period"}


def plan_label(plan):
    """`Pro (12.00 USD / month)`."""
    return f"{plan.name} ({money(plan.price, plan.currency)} / {plan.billing_interval})"


def live_subscription_of(account):
    return (
        Subscription.objects.select_related("plan", "scheduled_plan")
        .filter(account=account, status__in=Subscription.LIVE_STATUSES)
        .first()
    )


def choices_of_when(live):
    """When a change may take effect: now only without a plan, at period end only for a
    Stripe subscription (Stripe's switch), either for a manual plan."""
    if live is None:
        return [NOW]
    if live.stripe_subscription_id:
        return [PERIOD_END]
    return [NOW, PERIOD_END]


def _check(live, plan, when):
    """The rules of a staff plan change; raises InvalidInput. Stripe's own rules (a synced
    price, the same billing interval) are `switch_stripe_plan`'s."""
    if when not in WHEN:
        raise InvalidInput("Choose when the change takes effect.", details={"when": ["unknown"]})
    if not plan.active:
        raise InvalidInput(
            f"{plan.code} is not active: it takes no new customers.", details={"plan": ["inactive"]}
        )
    if when not in choices_of_when(live):
        if live is None:
            message = "The account has no plan to change at its period end: put it on one now."
        else:
            message = (
                "A Stripe subscription changes plan at its period end, through Stripe (as the "
                "billing page's switch): choose the end of the current period."
            )
        raise InvalidInput(message, details={"when": ["not possible for this account"]})
    if live is None:
        return
    if live.stripe_subscription_id:
        if plan.stripe_price_id is None:
            raise InvalidInput(
                f"{plan.code} has no Stripe price: run 'Sync to Stripe' on the plan first.",
                details={"plan": ["not synced to Stripe"]},
            )
        if plan.billing_interval != live.plan.billing_interval:
            raise InvalidInput(
                f"{plan.code} bills every {plan.billing_interval}, the Stripe subscription "
                f"every {live.plan.billing_interval}: Stripe's switch keeps the interval.",
                details={"plan": ["another billing interval"]},
            )
    if when == NOW and plan.code == live.plan.code:
        raise InvalidInput(
            f"The account is already on {plan.code}: putting it on the same plan now would "
            "restart its period and grant its credits again (another version of the plan: "
            "the plan list's action “Move subscribers to the current version”).",
            details={"plan": ["already on this plan"]},
        )
    if when == PERIOD_END:
        if live.cancel_at_period_end:
            raise InvalidInput(
                "The subscription ends at its period end: resume it first, or change the plan now.",
                details={"when": ["canceled at period end"]},
            )
        if plan.pk == (live.scheduled_plan_id or live.plan_id):
            raise InvalidInput(
                f"{plan.code} is already the plan from the next period on.",
                details={"plan": ["already on this plan"]},
            )


def _credits_of(plan, *, trial=False):
    """The credits a period of `plan` grants, or (`trial`) its trial does, in words."""
    allowances = plan.allowances.select_related("credit_type").order_by("credit_type__code")
    amounts = [(a.trial_credits if trial else a.credits_per_period, a) for a in allowances]
    parts = [f"{credits(amount)} ({a.credit_type.code})" for amount, a in amounts if amount > 0]
    return ", ".join(parts) or "no credits"


@dataclass
class PlanChange:
    """What a staff plan change will do, in sentences for the confirmation page."""

    current: str  # the plan now, or "no plan"
    new: str
    when: str
    through_stripe: bool
    steps: list


def own_version(live, plan):
    """The account's own version when `plan` is the plan it is on: choosing one's plan keeps
    one's version (moving versions is the plan list's action)."""
    return live.plan if live is not None and plan.code == live.plan.code else plan


def describe_plan_change(*, account, plan, when):
    """What `change_account_plan` with these arguments would do now; raises InvalidInput as
    it would. Read only."""
    live = live_subscription_of(account)
    plan = own_version(live, plan)
    _check(live, plan, when)
    grants = _credits_of(plan)
    current = plan_label(live.plan) if live else "no plan"
    change = PlanChange(current, plan_label(plan), WHEN[when], False, [])
    steps = change.steps
    if live is not None and live.stripe_subscription_id:
        change.through_stripe = True
        end = f"{live.current_period_end:%Y-%m-%d %H:%M} UTC"
        if plan.pk == live.plan_id:
            steps.append(
                f"Through Stripe: Stripe's subscription {live.stripe_subscription_id} goes back "
                f"to {live.plan.name}'s price; the change to {live.scheduled_plan.name} "
                "scheduled for the period end is canceled."
            )
        else:
            steps.append(
                f"Through Stripe: Stripe's subscription {live.stripe_subscription_id} moves to "
                f"{plan.name}'s price now, without proration: its next invoice, at the period "
                f"end ({end}), bills {plan_label(plan)}."
            )
            steps.append(
                f"Here: {plan.name} is scheduled now; nothing is granted before then. When "
                f"Stripe reports that invoice paid (its webhook), {live.plan.name}'s period "
                f"closes by its terms and {plan.name}'s period begins with {grants}."
            )
        return change
    if when == NOW:
        now = clock.now()
        end = boundary(anchor=now, interval=plan.billing_interval, index=1)
        if live is None:
            steps.append(
                f"The account goes on {plan_label(plan)} now, invoiced by hand: no Stripe "
                "subscription, no card is charged."
            )
        else:
            steps.append(
                f"{live.plan.name} ends now, as at a period end: what is left of its plan "
                "credits rolls over by the terms of its period and the rest expires. "
                "Purchased and granted credits are not touched."
            )
            if live.cancel_at_period_end:
                steps.append("Its cancellation at period end goes with it: the new plan renews.")
            elif live.scheduled_plan_id:
                steps.append(f"The change to {live.scheduled_plan.name} at period end is dropped.")
            steps.append(f"{plan_label(plan)} starts now, invoiced by hand (no Stripe).")
        if trial_days := trial_days_for(account=account, plan=plan):
            trial_end = now + timedelta(days=trial_days)
            steps.append(
                f"It starts with its {trial_days}-day trial, to {trial_end:%Y-%m-%d}: "
                f"{_credits_of(plan, trial=True)} free now, expiring with it; then the first paid "
                f"period grants {grants}, and each renewal grants them again."
            )
            return change
        steps.append(
            f"Granted now: {grants}, for its first period, {now:%Y-%m-%d} to {end:%Y-%m-%d}; "
            "each renewal grants them again."
        )
        return change
    end = f"{live.current_period_end:%Y-%m-%d %H:%M} UTC"
    if plan.pk == live.plan_id:
        steps.append(
            f"The change to {live.scheduled_plan.name} scheduled for the period end ({end}) is "
            f"canceled: {live.plan.name} renews as usual."
        )
        return change
    steps.append(
        f"Nothing changes before the period end ({end}); nothing is granted now. Then "
        f"{live.plan.name}'s period closes by its terms and the renewal grants {grants} of "
        f"{plan.name}, invoiced by hand (no Stripe)."
    )
    if plan.billing_interval != live.plan.billing_interval:
        steps.append(f"{plan.name} bills every {plan.billing_interval}: periods count from then.")
    return change


def change_account_plan(*, account, plan, when, reason="", acting_user=None):
    """Put the account on `plan` (`when`: NOW or PERIOD_END), the way the module docstring
    says; `reason` goes into the subscription's history with `acting_user`. Raises
    InvalidInput (or PaymentProviderError from Stripe); nothing is changed then. Returns the
    Subscription (a Stripe one as scheduled here; Stripe's events settle the rest)."""
    with change_reason(reason):
        if when == NOW:
            with transaction.atomic(durable=True):
                # Why the lock: no Stripe subscription may start between the check and the
                # change (put_account_on_plan would end it here only, not at Stripe).
                live = (
                    Subscription.objects.select_for_update()
                    .filter(account=account, status__in=Subscription.LIVE_STATUSES)
                    .first()
                )
                _check(live, plan, when)
                return put_account_on_plan(account=account, plan=plan, acting_user=acting_user)
        live = live_subscription_of(account)
        plan = own_version(live, plan)
        _check(live, plan, when)
        if live is not None and live.stripe_subscription_id:
            return switch_stripe_plan(account=account, plan=plan, acting_user=acting_user)
        return change_plan_at_period_end(account=account, plan=plan, acting_user=acting_user)
