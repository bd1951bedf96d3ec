"""Checks contrib/examples/python-echo/bootstrap against a minimal fake Runtime API, so the example
is known to speak the protocol before runlambda serves it. Needs only pytest."""
import http.server
import json
import os
import queue
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

BOOTSTRAP = Path(__file__).resolve().parents[2] / "contrib" / "examples" / "python-echo" / "bootstrap"
PREFIX = "/2018-06-01/runtime"


class FakeRuntimeApi(http.server.ThreadingHTTPServer):
    """Hands queued events to GET /next and collects what the runtime posts back."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.events = queue.Queue()
        self.posts = queue.Queue()  # (path, headers, parsed JSON body)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def invoke(self, event, timeout=10):
        """Queues an event and returns (request id, path posted to, headers, body)."""
        request_id = str(uuid.uuid4())
        self.events.put((request_id, json.dumps(event).encode()))
        path, headers, body = self.posts.get(timeout=timeout)
        return request_id, path, headers, body


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        assert self.path == PREFIX + "/invocation/next", self.path
        request_id, payload = self.server.events.get()
        deadline = str(int(time.time() * 1000) + 30_000)
        self.reply(200, payload, [
            ("Lambda-Runtime-Aws-Request-Id", request_id),
            ("Lambda-Runtime-Deadline-Ms", deadline),
            ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:echo"),
            ("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Sampled=1"),
            ("Content-Type", "application/json"),
        ])

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.reply(202, b'{"status":"OK"}', [("Content-Type", "application/json")])
        self.server.posts.put((self.path, self.headers, json.loads(body)))


@pytest.fixture
def api():
    server = FakeRuntimeApi()
    yield server
    server.shutdown()


def start(api, **env):
    env = {
        "PATH": os.environ["PATH"],
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:%d" % api.server_address[1],
        "AWS_LAMBDA_FUNCTION_NAME": "echo",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        **env,
    }
    return subprocess.Popen([str(BOOTSTRAP)], env=env, stdout=subprocess.PIPE, text=True)


@pytest.fixture
def runtime(api):
    proc = start(api)
    yield proc
    proc.kill()
    proc.wait()


def test_echo_and_context(api, runtime):
    for n in range(3):  # one warm process serves them all
        request_id, path, headers, body = api.invoke({"n": n})
        assert path == f"{PREFIX}/invocation/{request_id}/response"
        assert headers["Content-Type"] == "application/json"
        assert body["echo"] == {"n": n}
        assert body["requestId"] == request_id
        assert (body["functionName"], body["memory"]) == ("echo", "128")
        assert 0 < body["remainingMs"] <= 30_000
    assert runtime.poll() is None


def test_raise_posts_error(api, runtime):
    request_id, path, headers, body = api.invoke({"raise": "boom"})
    assert path == f"{PREFIX}/invocation/{request_id}/error"
    assert headers["Lambda-Runtime-Function-Error-Type"] == "Function.RuntimeError"
    assert body["errorMessage"] == "boom"
    assert body["errorType"] == "RuntimeError"
    assert isinstance(body["stackTrace"], list) and body["stackTrace"]
    _, path, _, body = api.invoke({"after": "error"})  # the runtime carries on
    assert path.endswith("/response") and body["echo"] == {"after": "error"}


def test_exit_mid_invoke(api, runtime):
    api.events.put(("id-exit", b'{"exit": 3}'))
    assert runtime.wait(timeout=10) == 3
    assert api.posts.empty()


def test_sleep_allocate_print(api, runtime):
    started = time.monotonic()
    _, _, _, body = api.invoke({"sleep": 0.3})
    assert time.monotonic() - started >= 0.3
    _, _, _, body = api.invoke({"allocate_mb": 8})
    assert body["allocated"] == 8 << 20
    _, _, _, body = api.invoke({"print": "hello from the function"})
    assert body["echo"] == {"print": "hello from the function"}
    runtime.kill()
    assert "hello from the function\n" in runtime.stdout.read()


def test_write_tmp(api, runtime):
    try:
        _, _, _, body = api.invoke({"write_tmp_mb": 1})
        assert (body["written"], body["error"]) == (1 << 20, None)
    finally:
        Path("/tmp/fill").unlink(missing_ok=True)


def test_init_error(api):
    proc = start(api, ECHO_INIT_ERROR="bad config")
    path, headers, body = api.posts.get(timeout=10)
    assert path == PREFIX + "/init/error"
    assert headers["Lambda-Runtime-Function-Error-Type"] == "Runtime.RuntimeError"
    assert (body["errorMessage"], body["errorType"]) == ("bad config", "RuntimeError")
    assert proc.wait(timeout=10) == 1
