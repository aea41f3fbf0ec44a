"""The rate count in Redis (apps/api/throttling.py), on the thread's own connection."""

import hashlib
import os
import socket
import threading

import pytest
import redis
from django.conf import settings

from apps.api import throttling

pytestmark = pytest.mark.redis


def key_hash(name):
    return hashlib.sha256(name.encode()).hexdigest()


def test_each_request_of_a_key_counts_once_in_its_window_and_can_be_taken_back():
    hashed = key_hash("count-once")
    first = throttling.count_request(hashed)
    second = throttling.count_request(hashed)
    assert second.number == first.number + 1
    throttling.uncount_request(second)
    assert throttling.count_request(hashed).number == second.number
    assert 0 < redis.Redis.from_url(settings.REDIS_URL).ttl(first.window) <= 2 * throttling.WINDOW


def test_a_connection_redis_closed_while_idle_is_replaced_and_the_request_still_counts():
    hashed = key_hash("connection-killed")
    before = throttling.count_request(hashed).number
    host, port = throttling._redis()._sock.getsockname()[:2]
    redis.Redis.from_url(settings.REDIS_URL).client_kill(f"{host}:{port}")  # Redis hangs up
    assert throttling.count_request(hashed).number == before + 1
    assert throttling.count_request(hashed).number == before + 2


def test_a_forked_child_counts_on_a_connection_of_its_own():
    hashed = key_hash("forked")
    parent_client = throttling._redis()
    throttling.count_request(hashed)
    pid = os.fork()
    if pid == 0:  # the child: its first count opens a new connection
        ok = throttling._local.__dict__.get("client") is None
        ok = ok and throttling._redis() is not parent_client
        ok = ok and throttling.count_request(hashed).number > 0
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert throttling._redis() is parent_client


def test_threads_that_fail_at_once_pause_counting_and_say_so_once(settings, monkeypatch, caplog):
    """Redis unavailable: every thread that tried fails (here all of them, a socket timeout
    each), the first to record the pause logs it; the requests are served uncounted."""
    silent = socket.create_server(("127.0.0.1", 0), backlog=16)  # connects, never answers
    settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
    monkeypatch.setattr(throttling, "_redis_down_until", [0.0])
    together, counted = threading.Barrier(8), []

    def count():  # a new thread: a new connection, to the silent server
        together.wait()
        counted.append(throttling.count_request(key_hash("silent")).number)

    threads = [threading.Thread(target=count) for _ in range(8)]
    with caplog.at_level("WARNING", logger=throttling.logger.name):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    silent.close()

    assert counted == [0] * 8
    paused = [r for r in caplog.records if r.getMessage().startswith("Rate limits not counted")]
    assert len(paused) == 1
    assert throttling._redis_down_until[0] > 0
