from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Installed by the local settings only: `manage.py setup_demo` for `make run`."""

    name = "devtools.demo"
    verbose_name = "Demo data (development)"
