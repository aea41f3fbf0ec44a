"""Celery tasks for webhooks: thin callers of the services; they take ids."""

from celery import shared_task

from .services import DELIVER_TASK, deliver


@shared_task(name=DELIVER_TASK, soft_time_limit=60, time_limit=90, acks_late=True)
def deliver_webhook(delivery_id):
    delivery = deliver(delivery_id=delivery_id)
    return None if delivery is None else delivery.status
