"""The periods' scheduled job (apps/jobs/registry.py)."""

from apps.jobs.registry import register

from .services import renew_due_subscriptions
from .trials import notify_trials_ending

# First of all: the expiry job then finds only what renewal did not close.
register("renew_due_subscriptions", renew_due_subscriptions, order=10)
# After the renewal: a trial it converted is not ending any more.
register("notify_trials_ending", notify_trials_ending, order=15)
