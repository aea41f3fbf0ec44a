"""The job of the layer below: the outbox sweeper (apps/core/outbox.py), counted as a job."""

from apps.core import outbox

from .counts import JobCounts
from .registry import register


def publish_outbox(*, now=None, on_chunk=None, chunk_size=100):
    """Publish what the outbox holds (its time is the broker's, not `now`). Returns JobCounts."""
    return outbox.publish_outbox(counts=JobCounts(), on_chunk=on_chunk, chunk_size=chunk_size)


# Last of all: it sends what the jobs before it could not publish.
register("publish_outbox", publish_outbox, order=1000)
