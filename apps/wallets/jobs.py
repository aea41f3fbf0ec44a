"""The wallets' scheduled job (apps/jobs/registry.py)."""

from apps.jobs.registry import register

from .services import expire_grants

register("expire_grants", expire_grants, order=20)
