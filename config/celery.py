import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("creditdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="creditdesk.ping")
def ping():
    """Round trip through the broker: used by tests and by ops to prove a worker is alive."""
    return "pong"
