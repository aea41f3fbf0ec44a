import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("creditdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="creditdesk.ping")
def ping():
    """Round trip through the broker: used by tests and by ops to prove a worker is alive."""
    return "pong"


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def log_as_the_web_does(logger, **kwargs):
    """A worker's lines in the settings' LOG_FORMAT too: Celery sets up its own handlers, in
    its own words, unless told otherwise (JSON in production)."""
    from django.conf import settings

    from apps.core.logging import JsonFormatter, RequestIdFilter

    if settings.LOG_FORMAT == "json":
        for handler in logger.handlers:
            handler.setFormatter(JsonFormatter())
            handler.addFilter(RequestIdFilter())
