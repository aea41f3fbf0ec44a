"""The simulator's scheduled job (apps/jobs/registry.py)."""

from apps.jobs.registry import register

from .services import fail_stale_runs

register("fail_stale_simulations", fail_stale_runs, order=95)
