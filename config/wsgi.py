import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
django_application = get_wsgi_application()

from apps.api.fast_lane import FastLane  # noqa: E402  (needs the settings loaded)

application = FastLane(django_application)
