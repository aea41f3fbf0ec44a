"""The usage app's scheduled job (apps/jobs/registry.py)."""

from apps.jobs.registry import register

from .services import release_expired_reservations

register("release_expired_reservations", release_expired_reservations, order=30)
