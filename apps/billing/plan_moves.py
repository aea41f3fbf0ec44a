"""Moving a plan's subscribers from one version to another (docs/catalog.md, "Plan
versions"): now, or at their period end; Stripe-backed subscriptions at Stripe too.

A version's subscribers keep its terms until staff move them. Each subscriber moves in its own
transaction, so a long move never holds every account at once; a run that stops half way
(Stripe unreachable, say) is finished by running it again, which finds only those not moved.
"""

from dataclasses import dataclass, field

import stripe

from apps.accounts.models import Subscription
from apps.catalog.models import Plan
from apps.catalog.selectors import plan_document, plans_with_terms
from apps.catalog.services import change_lines, plan_diff
from apps.core.errors import DomainError, InvalidInput, PaymentProviderError
from apps.periods.services import change_plan_at_period_end, move_to_version_now

from .contract_prices import bill_at_stripe, price_due, stripe_price_id
from .gateway import call_stripe

NOW, PERIOD_END = "now", "period_end"
WHEN = (NOW, PERIOD_END)


@dataclass
class MovePreview:
    from_plan: Plan
    to_plan: Plan
    when: str
    subscribers: int
    on_stripe: int
    changes: list  # [(path, old, new)], the file format's paths

    def describe(self):
        when = "now" if self.when == NOW else "at their period end"
        lines = [
            f"Move {self.subscribers} subscriber(s) of {self.from_plan.code} from version "
            f"{self.from_plan.version} to version {self.to_plan.version}, {when}"
            + (f" ({self.on_stripe} at Stripe)." if self.on_stripe else ".")
        ]
        lines += change_lines(self.changes)
        if not self.changes:
            lines.append("    (the two versions have the same terms)")
        return "\n".join(lines)


@dataclass
class MoveResult:
    moved: list = field(default_factory=list)  # external ids
    failed: list = field(default_factory=list)  # (external id, message)

    def describe(self):
        lines = [f"Moved {len(self.moved)} subscriber(s)."]
        lines += [f"  not moved: {account}: {message}" for account, message in self.failed]
        return "\n".join(lines)


def version_of(*, code, version=None):
    """The plan version `code@version` (the current one without a number)."""
    found = Plan.objects.filter(code=code)
    found = found.filter(current=True) if version is None else found.filter(version=version)
    plan = found.first()
    if plan is None:
        which = "a current version" if version is None else f"a version {version}"
        raise InvalidInput(f"The plan {code!r} has no {which}.", details={"plan": ["unknown"]})
    return plan


def subscribers_of(from_plan):
    """Live subscriptions on `from_plan` whose next period is not decided already: one with
    a change scheduled (another plan, or a version) keeps it, at Stripe as here."""
    found = Subscription.objects.filter(
        plan=from_plan, status__in=Subscription.LIVE_STATUSES, scheduled_plan__isnull=True
    )
    return found.select_related("account").order_by("pk")


def _check(from_plan, to_plan, when):
    if when not in WHEN:
        raise InvalidInput(f"when is {' or '.join(WHEN)}.", details={"when": ["unknown"]})
    if from_plan.code != to_plan.code:
        raise InvalidInput("Subscribers move between versions of one plan; a change of plan is "
                           "made per account.", details={"plan": ["another plan"]})  # fmt: skip
    if from_plan.pk == to_plan.pk:
        raise InvalidInput("Pick two different versions.", details={"version": ["the same"]})


def preview_move(*, from_plan, to_plan, when):
    """How many would move and what changes for them, writing nothing."""
    _check(from_plan, to_plan, when)
    subscribers = subscribers_of(from_plan)
    terms = plans_with_terms().in_bulk([from_plan.pk, to_plan.pk])
    return MovePreview(
        from_plan=from_plan,
        to_plan=to_plan,
        when=when,
        subscribers=subscribers.count(),
        on_stripe=subscribers.filter(stripe_subscription_id__isnull=False).count(),
        changes=plan_diff(plan_document(terms[from_plan.pk]), plan_document(terms[to_plan.pk])),
    )


def move_subscribers(*, from_plan, to_plan, when, acting_user=None, limit=None):
    """Move the live subscribers of `from_plan` to `to_plan` (a version of the same plan),
    `now` or at their `period_end`. Returns a MoveResult; one that fails (Stripe refused,
    say) stays where it was and is listed."""
    _check(from_plan, to_plan, when)
    result = MoveResult()
    subscriptions = subscribers_of(from_plan)
    for subscription in subscriptions[:limit] if limit else subscriptions:
        try:
            _move_one(subscription, to_plan, when, acting_user)
        except DomainError as error:
            result.failed.append((subscription.account.external_id, error.message))
        else:
            result.moved.append(subscription.account.external_id)
    return result


def _move_one(subscription, to_plan, when, acting_user):
    account = subscription.account
    if subscription.stripe_subscription_id:
        _check_stripe(subscription, to_plan)
    # Ours first, so that Stripe's customer.subscription.updated, which may arrive before
    # Stripe's answer does, finds the new version expected and changes nothing.
    if when == NOW:
        move_to_version_now(account=account, plan=to_plan, acting_user=acting_user)
    else:
        change_plan_at_period_end(account=account, plan=to_plan, acting_user=acting_user)
    if subscription.stripe_subscription_id:
        try:
            bill_at_stripe(stripe_subscription_id=subscription.stripe_subscription_id, plan=to_plan)
        except DomainError as error:
            if getattr(error, "outcome_unknown", False):
                # No answer may still mean done: read Stripe before undoing ours (undone
                # while Stripe moved, its next event would switch the plan here anew).
                done = _bills(subscription, to_plan)
                if done:
                    return
                if done is None:
                    raise PaymentProviderError(
                        "Stripe did not answer: moved here, and perhaps not at Stripe; its next "
                        "invoice tells (one at another price than the version's is flagged for "
                        "Finance and grants nothing)."
                    ) from error
            back = subscription.plan
            if when == NOW:
                move_to_version_now(account=account, plan=back, acting_user=acting_user)
            else:
                change_plan_at_period_end(account=account, plan=back, acting_user=acting_user)
            raise


def _bills(subscription, plan):
    """Whether Stripe's subscription bills its next period at `plan`'s price (or the
    contract's, when one is live then); None if Stripe cannot say."""
    try:
        remote = call_stripe(
            stripe.Subscription.retrieve, id=subscription.stripe_subscription_id
        ).to_dict()
        due = price_due(account_id=subscription.account_id, plan=plan,
                        at=subscription.current_period_end)  # fmt: skip
    except PaymentProviderError:
        return None
    return stripe_price_id(remote["items"]["data"][0]) == due


def _check_stripe(subscription, to_plan):
    if to_plan.stripe_price_id is None:
        raise InvalidInput(f"{to_plan.label} has no Stripe price yet: sync the catalog to "
                           "Stripe first.", details={"plan": ["no Stripe price"]})  # fmt: skip
    if to_plan.billing_interval != subscription.plan.billing_interval:
        raise InvalidInput(
            f"{to_plan.label} bills every {to_plan.billing_interval}, the subscription every "
            f"{subscription.plan.billing_interval}: change it per account.",
            details={"plan": ["another billing interval"]},
        )
