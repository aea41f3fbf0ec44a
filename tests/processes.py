"""Servers the tests start as processes of their own (Redis, PgBouncer, an example app)."""

import socket
import time


def spare_port():
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_listening(port, process, log, *, seconds=30):
    """Until `process` accepts connections on `port`; fails with its `log` (a Path) if it
    exits first or does not listen in time."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"nothing listens on {port}: {log.read_text()}"
            time.sleep(0.1)
