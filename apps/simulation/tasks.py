"""Celery task for simulation runs: a thin caller of the service; it takes the run's id."""

from celery import shared_task

from .services import SIMULATE_TASK, run_simulation

# A run commits chunk by chunk; a time limit cuts it like a failure (no lines kept).
LIMITS = {"soft_time_limit": 60 * 60, "time_limit": 61 * 60}


@shared_task(name=SIMULATE_TASK, **LIMITS)
def run_simulation_task(run_id):
    run = run_simulation(run_id=run_id)
    return None if run is None else run.status
