"""What the reliability tests share: CreditDesk under its production server (granian) in a
process of its own, and client threads that drive the API and record every answer."""

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import NamedTuple

from django.conf import settings

from apps.jobs.models import JobRun
from apps.jobs.tasks import TASKS
from tests.clusters import database_url
from tests.processes import spare_port, wait_until_listening


@contextmanager
def granian(env, log):
    """The WSGI application (the fast lane in front of Django) under granian, one worker of
    four threads; yields its port."""
    port = spare_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [f"{sys.prefix}/bin/granian", "--interface", "wsgi", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1", "--blocking-threads", "4", "--no-ws",
             "config.wsgi:application"],
            cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until_listening(port, process, log)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)


class Answer(NamedTuple):
    tag: str  # in the request's metadata (and its idempotency key, if keyed)
    path: str
    keyed: bool
    status: int | None  # None: no answer
    code: str | None
    retry_after: str | None
    replayed: bool
    at: float  # when it came (time.monotonic())


def call(conn, raw_key, path, tag, *, keyed=False):
    """POST a consume or check for one credit of `api_call` on `acme`: `(status, error code,
    Retry-After, replayed)`, or None when no answer came."""
    headers = {"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"}
    if keyed:
        headers["Idempotency-Key"] = tag
    body = {"account": "acme", "feature": "api_call"}
    if path.endswith("consume"):
        body["metadata"] = {"tag": tag}
    try:
        conn.request("POST", path, json.dumps(body), headers)
        response = conn.getresponse()
        payload = json.loads(response.read())
    except (OSError, http.client.HTTPException):
        return None
    code = payload.get("error", {}).get("code") if response.status >= 400 else None
    return (response.status, code, response.getheader("Retry-After"),
            response.getheader("Idempotent-Replayed") == "true")  # fmt: skip


class Load:
    """Client threads, each calling in turn the paths of `mix` (e.g. consume, consume,
    check); every other consume carries an idempotency key."""

    def __init__(self, port, raw_key, *, clients=6, mix=("/api/v1/consume",)):
        self.port, self.raw_key, self.clients, self.mix = port, raw_key, clients, mix
        self.answers = []
        self.numbers = count()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []

    def __enter__(self):
        self.threads = [threading.Thread(target=self.client) for _ in range(self.clients)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def client(self):
        conn = None
        while not self.stopping.is_set():
            with self.lock:
                n = next(self.numbers)
            path, tag = self.mix[n % len(self.mix)], f"r{n}"
            keyed = path.endswith("consume") and n % 2 == 0
            conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            answer = call(conn, self.raw_key, path, tag, keyed=keyed)
            if answer is None:  # the server closed the connection: tried on a new one
                conn.close()
                conn = None
            answer = Answer(tag, path, keyed, *(answer or (None, None, None, False)),
                            time.monotonic())  # fmt: skip
            with self.lock:
                self.answers.append(answer)
        if conn is not None:
            conn.close()


def outside(env, command):
    """`python -m tests.reliability.outside <command>` in `env`: its output."""
    done = subprocess.run([sys.executable, "-m", "tests.reliability.outside", command],
                          cwd=settings.BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def celery_worker(log, **env):
    """A solo `celery worker` process on this test's queue and database (and REDIS_URL, unless
    `env` says otherwise)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "DATABASE_URL": database_url(), **env}  # fmt: skip
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
             "--loglevel", "INFO", "-Q", settings.CELERY_TASK_DEFAULT_QUEUE],
            cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


@contextmanager
def killed_worker(log, when, **env):
    """A `celery worker` (celery_worker) that takes what the block queues, SIGKILLed as soon
    as `when()` holds after the block."""
    worker = celery_worker(log, **env)
    try:
        yield worker
        wait_for(when, 60, log.read_text)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def run_on_a_new_worker(job, log, *, env=None, **kwargs):
    """Beat's next tick of `job` (its task sent with `kwargs`), taken by a new worker; the
    run's JobRun once it has finished (a killed run before it stays running)."""
    worker = celery_worker(log, **(env or {}))
    try:
        TASKS[job].apply_async(kwargs=kwargs)
        finished = JobRun.objects.filter(job=job).exclude(status=JobRun.Status.RUNNING)
        wait_for(finished.exists, 60, log.read_text)
        return finished.get()
    finally:
        stop_worker(worker)


def stop_worker(worker):
    """A warm shutdown, or a kill if it takes too long: a worker left running would take the
    next tests' tasks from this process's queue."""
    worker.terminate()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def reaching_offline_stripe(folder, url):
    """The environment of a process whose Stripe client calls the offline Stripe at `url`, as
    the test's own client does: the test settings with STRIPE_API_HOST set (dj-stripe points
    the client at it), in a settings module written to `folder`."""
    (folder / "offline_stripe_settings.py").write_text(
        f"from config.settings.test import *  # noqa: F403\nSTRIPE_API_HOST = {url!r}\n"
    )
    return {"DJANGO_SETTINGS_MODULE": "offline_stripe_settings",
            "PYTHONPATH": os.pathsep.join([str(folder), str(settings.BASE_DIR)])}  # fmt: skip


def wait_for(condition, seconds, why):
    """Until `condition()`; fails with `why()` after `seconds` of real time (a test's frozen
    clock does not stop it)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, why()
        time.sleep(0.1)


@contextmanager
def webhook_receiver(*, first_hangs=False):
    """An HTTP endpoint that takes webhooks: `(url, event ids received, in order)`. With
    `first_hangs`, its first POST is answered only when the receiver stops (a worker sending
    it can be killed mid-delivery)."""
    received, release = [], threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            received.append(self.headers["CreditDesk-Event-Id"])
            if first_hangs and len(received) == 1:
                release.wait(60)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks", received
    finally:
        release.set()
        server.shutdown()
        server.server_close()
