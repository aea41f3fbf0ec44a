import os

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from apps.accounts.services import create_api_key

IS_POSTGRES = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def pytest_configure(config):
    if os.environ.get("CI") and not IS_POSTGRES:
        raise pytest.UsageError("CI runs the suite on PostgreSQL: set DATABASE_URL.")
    if os.environ.get("CI") and not settings.REDIS_URL:
        raise pytest.UsageError("CI runs the suite on Redis: set REDIS_URL.")


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    skip_redis = pytest.mark.skip(reason="needs Redis (set REDIS_URL)")
    for item in items:
        if "postgres" in item.keywords and not IS_POSTGRES:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not settings.REDIS_URL:
            item.add_marker(skip_redis)


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def service_key(db):
    """A raw service key with every scope."""
    _, raw_key = create_api_key(
        name="test service", scopes=["usage:read", "usage:write", "accounts:write", "grants:write"]
    )
    return raw_key


@pytest.fixture
def authed_client(api_client, service_key):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {service_key}")
    return api_client


@pytest.fixture(params=["database function", "python"])
def consume_path(request, settings):
    """Run a test against both implementations of consume: the PostgreSQL function (fast
    path) and the portable Python path. They must behave identically."""
    if request.param == "database function" and not IS_POSTGRES:
        pytest.skip("the database function exists on PostgreSQL only")
    settings.CONSUME_FAST_PATH = request.param == "database function"
    return request.param
