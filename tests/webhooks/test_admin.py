"""The webhook and job screens: Finance and Support read the logs and may resend;
endpoints are for superusers."""

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model

from apps.jobs.registry import run_job
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.factories import AccountFactory, UserFactory
from tests.ledger import give

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivery(receiver):
    account = AccountFactory()
    WebhookEndpoint.objects.create(account=account, url=receiver.url)
    give(account, 3)
    return WebhookDelivery.objects.get()


@pytest.mark.parametrize("group", ["Finance", "Support"])
def test_staff_read_the_logs_and_job_runs_but_not_endpoints(client, delivery, group):
    run_job(job="expire_grants", trigger="command")
    client.force_login(UserFactory(groups=[group]))
    assert client.get("/admin/webhooks/webhookdelivery/").status_code == 200
    # Admin URLs escape a key (quote): "evt_40…" in a URL would read back as "evt@…".
    event_url = f"/admin/webhooks/webhookevent/{quote(delivery.event_id)}/change/"
    assert client.get(event_url).status_code == 200
    assert client.get("/admin/jobs/jobrun/").status_code == 200
    assert client.get("/admin/webhooks/webhookendpoint/").status_code == 403


def test_resend_from_the_admin_queues_the_delivery_again(client, delivery):
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=8)
    client.force_login(UserFactory(groups=["Support"]))
    response = client.post(
        "/admin/webhooks/webhookdelivery/",
        {"action": "resend_deliveries", "_selected_action": [delivery.pk]},
        follow=True,
    )
    assert "Queued 1 deliveries again." in response.content.decode()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0)


def test_a_superuser_manages_endpoints_and_sees_the_secret_to_give_the_receiver(client, db):
    client.force_login(get_user_model().objects.create_superuser("root", "r@x.io", "pw"))
    account = AccountFactory(external_id="acme")
    response = client.post(
        "/admin/webhooks/webhookendpoint/add/",
        {
            "account": account.pk,
            "url": "https://hooks.example.com/cd",
            "event_types": "[]",
            "active": "on",
            "description": "",
        },  # fmt: skip
    )
    assert response.status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    page = client.get(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/").content.decode()
    assert endpoint.secret.startswith("whsec_") and endpoint.secret in page
    assert client.get("/admin/jobs/jobrun/").status_code == 200
