"""dj-stripe is installed and its webhook endpoint is wired (issue 7 builds on it)."""

import uuid

import pytest

pytestmark = pytest.mark.django_db


def test_the_webhook_endpoint_refuses_an_unsigned_request(client):
    response = client.post(
        f"/stripe/webhook/{uuid.uuid4()}/", data="{}", content_type="application/json"
    )
    assert response.status_code == 400


def test_a_signed_request_to_an_unknown_endpoint_is_not_found(client):
    response = client.post(
        f"/stripe/webhook/{uuid.uuid4()}/",
        data="{}",
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE="t=1,v1=00",
    )
    assert response.status_code == 404


def test_stripe_objects_hang_off_accounts(settings):
    assert settings.DJSTRIPE_SUBSCRIBER_MODEL == "accounts.Account"
    assert settings.DJSTRIPE_FOREIGN_KEY_TO_FIELD == "id"
