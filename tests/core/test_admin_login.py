"""Admin logins are throttled against password guessing (django-axes)."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import RequestFactory
from django.utils import timezone

from apps.core.middleware import client_ip

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def staff():
    return get_user_model().objects.create_user("ana", password="right-horse", is_staff=True)


def log_in(client, password, address="203.0.113.7"):
    return client.post(LOGIN, {"username": "ana", "password": password}, REMOTE_ADDR=address)


def test_five_wrong_passwords_lock_the_username_out_from_that_address(client, settings, staff):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "guess").status_code == 200  # the form again, with its error
    locked = log_in(client, "guess")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    # Even the right password is refused while locked out …
    assert log_in(client, "right-horse").status_code == 429
    # … but from another address the user still gets in.
    assert log_in(client, "right-horse", address="198.51.100.2").status_code == 302


def test_the_lockout_ends_after_the_cooloff(client, settings, staff):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "guess")
    assert log_in(client, "right-horse").status_code == 429
    with time_machine.travel(timezone.now() + settings.AXES_COOLOFF_TIME + timedelta(seconds=1)):
        assert log_in(client, "right-horse").status_code == 302


def test_a_success_resets_the_count(client, settings, staff):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "guess")
    assert log_in(client, "right-horse").status_code == 302
    client.logout()
    assert log_in(client, "guess").status_code == 200  # counting starts again


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "1.1.1.1", "10.0.0.5"),  # no proxy: the header is the client's word, ignored
        (1, "1.1.1.1, 203.0.113.7", "203.0.113.7"),  # what our one proxy saw
        (2, "198.51.100.9, 203.0.113.7, 10.0.0.4", "203.0.113.7"),
        (2, "203.0.113.7", "10.0.0.5"),  # fewer entries than proxies: the peer
    ],
)
def test_the_client_address_behind_trusted_proxies(settings, proxies, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected
