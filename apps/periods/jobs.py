"""The periods' scheduled job (apps/jobs/registry.py)."""

from apps.jobs.registry import register

from .services import renew_due_subscriptions

# First of all: the expiry job then finds only what renewal did not close.
register("renew_due_subscriptions", renew_due_subscriptions, order=10)
