"""Celery tasks for simulation runs: thin callers of the services; they take ids. A run's
task queues one task per chunk of accounts, so that a run uses every worker process."""

from celery import shared_task

from .services import CHUNK_TASK, SIMULATE_TASK, run_chunk, start_chunks

# A chunk is a transaction of its own; a time limit cuts one like a failure (no lines kept).
LIMITS = {"soft_time_limit": 10 * 60, "time_limit": 11 * 60}


@shared_task(name=SIMULATE_TASK, **LIMITS)
def start_simulation_task(run_id):
    return start_chunks(run_id=run_id)


@shared_task(name=CHUNK_TASK, **LIMITS)
def simulation_chunk_task(run_id, index):
    return run_chunk(run_id=run_id, index=index)
