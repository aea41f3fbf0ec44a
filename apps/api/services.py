"""Use cases of the API that span apps: here, above the apps they compose, so that none of
those imports a higher layer (.importlinter)."""

from django.db import transaction

from apps.accounts.models import Subscription
from apps.accounts.services import upsert_account
from apps.catalog.models import Plan
from apps.core.errors import InvalidInput, SubscriptionManagedByStripe
from apps.periods.services import put_account_on_plan


def sync_account(*, external_id, fields, plan_code=None, acting_user=None):
    """The API's PUT: create or update an account and, when `plan_code` names another plan
    than the live one, put it on that plan's current version — all in one transaction. The
    plan it is on already, under any version, changes nothing (a subscriber keeps its
    version until staff move it). Returns `(account, created)`."""
    with transaction.atomic(durable=True):
        plan = None
        if plan_code is not None:
            plan = Plan.objects.filter(code=plan_code, current=True, active=True).first()
            if plan is None:
                raise InvalidInput(
                    f"No active plan has the code {plan_code!r}.", details={"plan": ["unknown"]}
                )
        account, created = upsert_account(
            external_id=external_id, acting_user=acting_user, **fields
        )
        if plan is not None:
            live = (
                Subscription.objects.select_for_update()
                .filter(account=account, status__in=Subscription.LIVE_STATUSES)
                .first()
            )
            changes = live is None or live.plan.code != plan.code
            if changes and live is not None and live.stripe_subscription_id:
                raise SubscriptionManagedByStripe()
            if changes:
                put_account_on_plan(account=account, plan=plan, acting_user=acting_user)
    return account, created
