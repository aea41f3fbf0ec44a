"""Revenue's scheduled job (apps/jobs/registry.py)."""

from apps.jobs.registry import register

from .posting import post_revenue

register("post_revenue", post_revenue, order=90)
