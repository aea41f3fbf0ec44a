"""A real Redis server for the broker-outage tests (tests/core/test_outbox.py, the
reliability suite): started on a spare port, stopped and started again mid-test. Nothing
about the broker is faked. `redis_broker` is a fixture of every test (tests/conftest.py)."""

import base64
import json
import shutil
import signal
import subprocess
import time

import pytest
import redis
from django.conf import settings

from config.celery import app as celery_app
from tests.processes import spare_port


class RedisServer:
    def __init__(self, port):
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client().ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self):
        """Down: the port refuses connections."""
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process = None

    def hang(self):
        """Up but silent (a broker behind a dead network path): connections open, no reply."""
        self.process.send_signal(signal.SIGSTOP)

    def wake(self):
        self.process.send_signal(signal.SIGCONT)

    def client(self):
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def queued(self):
        """The task messages waiting in the test queue: `[(task name, args), …]`, oldest first."""
        raw = self.client().lrange(settings.CELERY_TASK_DEFAULT_QUEUE, 0, -1)
        messages = [json.loads(item) for item in reversed(raw)]  # LPUSH: newest first
        return [
            (m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages
        ]


def _drop_pooled_connections():
    """What Celery does in a forked child: forget the connection and producer pools, so the
    next publish connects to the broker URL now configured."""
    celery_app._after_fork()


@pytest.fixture
def redis_broker():
    """Celery publishes to a Redis server of this test's own (with the transport options the
    settings give a Redis broker); yields the server, to stop and start again."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server binary")
    server = RedisServer(spare_port())
    server.start()
    saved = celery_app.conf.broker_url, celery_app.conf.broker_transport_options
    celery_app.conf.broker_url = server.url
    celery_app.conf.broker_transport_options = settings.REDIS_BROKER_TRANSPORT_OPTIONS
    _drop_pooled_connections()
    try:
        yield server
    finally:
        celery_app.conf.broker_url, celery_app.conf.broker_transport_options = saved
        _drop_pooled_connections()
        if server.process is not None:
            server.wake()
            server.stop()
