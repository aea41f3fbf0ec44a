"""Where outgoing webhooks may be sent (docs/webhooks.md, "Where endpoints may point").

An endpoint URL is the company's, typed by staff; delivering to it must not let it reach
what only this server can reach (server-side request forgery): its own loopback, the private
network, link-local neighbours, or a cloud metadata service that hands out credentials. So a
URL is accepted only

* with the scheme `https`, or `http` where `WEBHOOK_REQUIRE_HTTPS` is false (local and test
  settings; true everywhere else), and
* when every address its host stands for is public, or inside one of the networks listed in
  `WEBHOOK_ALLOWED_NETWORKS`.

It is checked when an endpoint is saved, and again before each delivery after resolving the
host; the request is then sent to the address that was checked (`post`), never to a second
lookup of the name, so a DNS answer that changes in between (rebinding) cannot redirect it.
"""

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.core.errors import DomainError

SCHEMES = ("https", "http")
# Cloud metadata services: they answer with the machine's credentials. The names stand for
# the address; allowing the address (WEBHOOK_ALLOWED_NETWORKS) allows the names.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
NAMED_ADDRESSES = {
    "localhost": ("127.0.0.1", "::1"),
    "metadata.google.internal": ("169.254.169.254",),
    "metadata.goog": ("169.254.169.254",),
}
_SETTING = "WEBHOOK_ALLOWED_NETWORKS"


class RefusedDestination(DomainError):
    """An endpoint URL that webhooks may not be sent to; the message says why."""

    code = "webhook_destination_refused"
    default_message = "Webhooks may not be sent to this URL."


@dataclass(frozen=True)
class Destination:
    """A checked URL: where to connect (`addresses`, in order) and what to ask for."""

    scheme: str
    host: str
    port: int
    target: str  # path and query
    addresses: tuple


def check_url(url, *, resolve=True):
    """The Destination for `url`, or RefusedDestination saying why not. With `resolve`, the
    host must resolve (delivery); without, a host that does not resolve yet is checked by
    what is known of its name only (saving an endpoint)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise RefusedDestination("A webhook URL must start with https://.")
    if scheme == "http" and settings.WEBHOOK_REQUIRE_HTTPS:
        raise RefusedDestination("A webhook URL must use https:// here, not http://.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise RefusedDestination("A webhook URL needs a host.")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as error:
        raise RefusedDestination(f"A webhook URL needs a valid port ({error}).") from None
    addresses = _known_addresses(host)
    try:
        addresses += _resolve(host, port)
    except UnicodeError:
        # A name no DNS can carry (not IDNA): getaddrinfo's codec refuses it.
        raise RefusedDestination(f"A webhook URL needs a valid host name, not {host!r}.") from None
    except OSError as error:
        if resolve:
            raise RefusedDestination(f"The host {host} does not resolve ({error}).") from None
    allowed = allowed_networks()
    for address in dict.fromkeys(addresses):
        reason = refusal(address, allowed)
        if reason:
            shown = host if host == str(address) else f"{host} ({address})"
            raise RefusedDestination(
                f"Webhooks may not be sent to {shown}: it is {reason}. List its network in "
                f"{_SETTING} to allow it."
            )
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    return Destination(
        scheme=scheme,
        host=host,
        port=port,
        target=target,
        addresses=tuple(str(a) for a in dict.fromkeys(addresses)),
    )


def _known_addresses(host):
    name = host.lower()
    if name.endswith(".localhost"):
        name = "localhost"
    return [ipaddress.ip_address(a) for a in NAMED_ADDRESSES.get(name, ())]


def _resolve(host, port):
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def allowed_networks():
    """WEBHOOK_ALLOWED_NETWORKS as ip_network objects (an address alone is a /32 or /128)."""
    try:
        return [
            ipaddress.ip_network(n.strip(), strict=False) for n in settings.WEBHOOK_ALLOWED_NETWORKS
        ]
    except ValueError as error:
        raise ImproperlyConfigured(f"{_SETTING}: {error}") from None


def refusal(address, allowed=()):
    """Why `address` may not receive webhooks ("a loopback address 127.0.0.1"), or None."""
    if any(address.version == n.version and address in n for n in allowed):
        return None
    plain = address
    if address.version == 6 and address.ipv4_mapped is not None:
        plain = address.ipv4_mapped
        if any(n.version == 4 and plain in n for n in allowed):
            return None
    for kind, test in _KINDS:
        if any(test(a) for a in (plain, *_embedded(plain))):
            return f"a {kind} address {address}"
    return None


def _embedded(address):
    """The IPv4 addresses an IPv6 address carries (6to4, Teredo): a relay may deliver there."""
    if address.version != 6:
        return ()
    return tuple(a for a in (address.sixtofour, (address.teredo or (None, None))[1]) if a)


_KINDS = [
    ("cloud metadata", lambda a: a in METADATA_ADDRESSES),
    ("unspecified", lambda a: a.is_unspecified),
    ("loopback", lambda a: a.is_loopback),
    ("link-local", lambda a: a.is_link_local),
    ("site-local", lambda a: a.version == 6 and a.is_site_local),
    ("multicast", lambda a: a.is_multicast),
    ("private", lambda a: a.is_private and not a.is_reserved),
    ("reserved", lambda a: a.is_reserved),
    ("non-public", lambda a: not a.is_global),
]


def post(destination, *, body, headers, timeout=10):
    """POST `body` to a checked destination and return the response's status. Connects to
    the checked addresses only (the first that answers), sends the URL's host name as Host
    (and, over https, as the name the certificate must match). Redirects are not followed."""
    if destination.scheme == "https":
        connection = _PinnedHTTPSConnection(
            destination.host,
            destination.port,
            timeout=timeout,
            context=ssl.create_default_context(),
        )
    else:
        connection = _PinnedHTTPConnection(destination.host, destination.port, timeout=timeout)
    connection.addresses = destination.addresses
    try:
        connection.request("POST", destination.target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(64 * 1024)
        return response.status
    finally:
        connection.close()


def _connect(addresses, port, timeout):
    error = OSError("no address to connect to")
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as refused:
            error = refused
    raise error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    addresses = ()

    def connect(self):
        self.sock = _connect(self.addresses, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    addresses = ()

    def connect(self):
        sock = _connect(self.addresses, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
