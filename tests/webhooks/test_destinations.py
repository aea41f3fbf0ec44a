"""Where outgoing webhooks may go (SSRF): https only under production settings; loopback,
private, link-local, unspecified, multicast, reserved and cloud metadata addresses are
refused unless WEBHOOK_ALLOWED_NETWORKS lists them. Checked when an endpoint is saved and
again at each delivery, after DNS, on the very address the request is then sent to."""

import os
import shutil
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from apps.webhooks.destinations import Destination, RefusedDestination, check_url, post
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from apps.webhooks.services import deliver
from tests.factories import AccountFactory
from tests.ledger import give

pytestmark = pytest.mark.django_db

INTERNAL_URLS = {
    "http://127.0.0.1:8000/hooks": "loopback",
    "http://localhost/hooks": "loopback",
    "http://app.localhost/hooks": "loopback",
    "http://[::1]/hooks": "loopback",
    "http://[::ffff:127.0.0.1]/hooks": "loopback",
    "http://2130706433/hooks": "loopback",  # 127.0.0.1 written as one number
    "http://10.1.2.3/hooks": "private",
    "http://172.16.0.9/hooks": "private",
    "http://192.168.1.20/hooks": "private",
    "http://[fc00::5]/hooks": "private",
    "http://169.254.10.1/hooks": "link-local",
    "http://[fe80::1]/hooks": "link-local",
    "http://0.0.0.0/hooks": "unspecified",
    "http://[::]/hooks": "unspecified",
    "http://224.0.0.1/hooks": "multicast",
    "http://[ff02::1]/hooks": "multicast",
    "http://240.0.0.1/hooks": "reserved",
    "http://[fec0::1]/hooks": "site-local",
    "http://[2002:7f00:1::1]/hooks": "loopback",  # 6to4 around 127.0.0.1
    "http://[2002:a9fe:a9fe::1]/hooks": "cloud metadata",  # 6to4 around 169.254.169.254
    "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hooks": "private",  # Teredo, 10.0.0.1
    "http://169.254.169.254/latest/meta-data/": "cloud metadata",
    "http://[fd00:ec2::254]/latest/meta-data/": "cloud metadata",
    "http://metadata.google.internal/computeMetadata/v1/": "cloud metadata",
}


@pytest.fixture
def nothing_allowed(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    return settings


def endpoint(url, account=None):
    return WebhookEndpoint(account=account or AccountFactory(), url=url)


@pytest.mark.parametrize(("url", "kind"), INTERNAL_URLS.items())
def test_an_endpoint_on_an_internal_address_is_refused_when_saved(nothing_allowed, url, kind):
    with pytest.raises(ValidationError) as refused:
        endpoint(url).full_clean()
    [message] = [m for m in refused.value.message_dict["url"] if "Webhooks may not" in m]
    assert kind in message
    assert "WEBHOOK_ALLOWED_NETWORKS" in message


def test_a_public_address_is_accepted(nothing_allowed):
    endpoint("http://93.184.215.14/hooks").full_clean()


def test_a_network_listed_in_the_setting_is_allowed(nothing_allowed):
    nothing_allowed.WEBHOOK_ALLOWED_NETWORKS = ["10.0.0.0/8", "169.254.169.254"]
    endpoint("http://10.1.2.3/hooks").full_clean()
    endpoint("http://169.254.169.254/latest/meta-data/").full_clean()
    endpoint("http://metadata.google.internal/computeMetadata/v1/").full_clean()
    with pytest.raises(ValidationError):
        endpoint("http://192.168.1.20/hooks").full_clean()


def test_a_host_name_no_dns_could_carry_is_refused_not_a_crash():
    """Not IDNA: the resolver's codec refuses it (it used to escape as a server error)."""
    with pytest.raises(RefusedDestination, match="valid host name"):
        check_url("https://bad\x98host.example/in", resolve=False)


def test_only_http_and_https_urls_are_ever_accepted(settings):
    for url in ("file:///etc/passwd", "ftp://93.184.215.14/x", "gopher://93.184.215.14/"):
        with pytest.raises(ValidationError) as refused:
            endpoint(url).full_clean()
        assert "https" in str(refused.value)


def test_https_only_when_the_setting_says_so(settings):
    settings.WEBHOOK_REQUIRE_HTTPS = True
    with pytest.raises(ValidationError) as refused:
        endpoint("http://93.184.215.14/hooks").full_clean()
    assert "must use https" in refused.value.message_dict["url"][0]
    endpoint("https://93.184.215.14/hooks").full_clean()


def test_production_settings_require_https_and_allow_no_internal_network():
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "x" * 50,
        "DATABASE_URL": "sqlite:///unused.sqlite3",
        "ALLOWED_HOSTS": "example.com",
    }
    environment.pop("WEBHOOK_ALLOWED_NETWORKS", None)
    printed = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
         "print(settings.WEBHOOK_REQUIRE_HTTPS, settings.WEBHOOK_ALLOWED_NETWORKS)"],
        env=environment, cwd=django_settings.BASE_DIR, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert printed.stdout.split() == ["True", "[]"]


def test_the_admin_refuses_an_internal_endpoint_with_a_clear_error(client, nothing_allowed):
    client.force_login(get_user_model().objects.create_superuser("root", "r@x.io", "pw"))
    account = AccountFactory()
    response = client.post(
        "/admin/webhooks/webhookendpoint/add/",
        {"account": account.pk, "url": "http://169.254.169.254/latest/meta-data/",
         "event_types": "[]", "active": "on", "description": ""},
    )  # fmt: skip
    assert response.status_code == 200
    assert "cloud metadata address 169.254.169.254" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_loopback_is_refused_at_delivery_unless_allowed(receiver, nothing_allowed):
    account = AccountFactory()
    WebhookEndpoint.objects.create(account=account, url=receiver.url)  # saved before the rule
    give(account, 5)
    delivery = deliver(delivery_id=WebhookDelivery.objects.get().pk)
    assert (delivery.status, delivery.attempts, delivery.last_response_status) == (
        "pending",
        1,
        None,
    )
    assert delivery.last_error.startswith("Refused: ")
    assert "loopback address 127.0.0.1" in delivery.last_error
    assert receiver.received == []


def test_a_host_name_is_checked_after_resolving_it(receiver, nothing_allowed):
    account = AccountFactory()
    url = receiver.url.replace("127.0.0.1", "localhost")
    WebhookEndpoint.objects.create(account=account, url=url)
    give(account, 5)
    delivery = deliver(delivery_id=WebhookDelivery.objects.get().pk)
    assert "loopback address" in delivery.last_error
    assert receiver.received == []
    nothing_allowed.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1"]
    WebhookDelivery.objects.update(next_attempt_at=delivery.next_attempt_at.replace(year=2000))
    delivery = deliver(delivery_id=delivery.pk)
    assert (delivery.status, delivery.last_response_status) == ("succeeded", 200)
    assert receiver.received[0]["host"] == url.split("/")[2]


def test_https_only_is_checked_again_at_delivery(receiver, settings):
    account = AccountFactory()
    WebhookEndpoint.objects.create(account=account, url=receiver.url)
    give(account, 5)
    settings.WEBHOOK_REQUIRE_HTTPS = True
    delivery = deliver(delivery_id=WebhookDelivery.objects.get().pk)
    assert "must use https" in delivery.last_error
    assert receiver.received == []


def test_the_request_goes_to_the_vetted_address_not_to_a_second_lookup(receiver):
    """The name is never looked up again when connecting (DNS rebinding): a name that
    resolves nowhere still reaches the address that was checked, with its own Host."""
    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    destination = Destination(
        scheme="http", host="rebound.invalid", port=port, target="/hooks?x=1",
        addresses=("127.0.0.1",),
    )  # fmt: skip
    status = post(destination, body=b"{}", headers={"Content-Type": "application/json",
                  "CreditDesk-Signature": "t=1,v1=0", "CreditDesk-Event-Id": "evt_1"})  # fmt: skip
    assert status == 200
    assert receiver.received[0]["host"] == f"rebound.invalid:{port}"


@pytest.fixture
def tls_receiver(tmp_path, monkeypatch):
    """A real https receiver on 127.0.0.1 whose certificate names hooks.test, trusted as a
    CA for this test (SSL_CERT_FILE, read by OpenSSL's default verify paths)."""
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", key, "-out", cert, "-subj", "/CN=hooks.test",
         "-addext", "subjectAltName=DNS:hooks.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    server.server_close()


def test_over_https_the_certificate_must_match_the_urls_host_not_the_address(tls_receiver):
    def send(host):
        destination = Destination(
            scheme="https", host=host, port=tls_receiver, target="/", addresses=("127.0.0.1",)
        )
        return post(destination, body=b"{}", headers={"Content-Type": "application/json"})

    assert send("hooks.test") == 204
    with pytest.raises(ssl.SSLCertVerificationError, match="other.test"):
        send("other.test")
