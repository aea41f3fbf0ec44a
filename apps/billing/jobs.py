"""Billing's scheduled jobs (apps/jobs/registry.py)."""

from apps.jobs.registry import register

from .contract_prices import bill_contracts_at_stripe
from .overage import send_overage_charges
from .recharge import run_auto_recharges
from .subscriptions import suspend_past_due_accounts

register("suspend_past_due_accounts", suspend_past_due_accounts, order=60)
register("send_overage_charges", send_overage_charges, order=70)
register("bill_contracts_at_stripe", bill_contracts_at_stripe, order=75)
register("run_auto_recharges", run_auto_recharges, order=80)
