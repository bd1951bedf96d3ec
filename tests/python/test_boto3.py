"""Invokes a function served by `runlambda run` through boto3's Lambda client, as users will.

Run against a server serving contrib/examples/python-echo:
    RUNLAMBDA_ENDPOINT=http://127.0.0.1:9000 RUNLAMBDA_FUNCTION=python-echo pytest tests/python
The tests are skipped when RUNLAMBDA_ENDPOINT is not set."""
import base64
import json
import os

import pytest

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402 (after the importorskip)

ENDPOINT = os.environ.get("RUNLAMBDA_ENDPOINT")
FUNCTION = os.environ.get("RUNLAMBDA_FUNCTION", "function")

pytestmark = pytest.mark.skipif(not ENDPOINT, reason="RUNLAMBDA_ENDPOINT is not set")


@pytest.fixture(scope="module")
def client():
    return boto3.client(
        "lambda",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="test",  # dummy credentials: runlambda does not check signatures
        aws_secret_access_key="test",
        # One attempt: botocore would otherwise retry a failed invoke and hide the failure.
        config=Config(retries={"total_max_attempts": 1}, read_timeout=60),
    )


def invoke(client, event, **kwargs):
    return client.invoke(FunctionName=FUNCTION, Payload=json.dumps(event).encode(), **kwargs)


def test_request_response_echoes(client):
    resp = invoke(client, {"hello": "boto3"})
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp
    assert resp["ExecutedVersion"] == "$LATEST"
    body = json.loads(resp["Payload"].read())
    assert body["echo"] == {"hello": "boto3"}
    assert body["requestId"] == resp["ResponseMetadata"]["RequestId"]  # x-amzn-RequestId


def test_event_is_accepted(client):
    resp = invoke(client, {"async": True}, InvocationType="Event")
    assert resp["StatusCode"] == 202
    assert resp["Payload"].read() == b""


def test_log_tail(client):
    resp = invoke(client, {"print": "line from the function"}, LogType="Tail")
    assert resp["StatusCode"] == 200
    log = base64.b64decode(resp["LogResult"]).decode()
    request_id = resp["ResponseMetadata"]["RequestId"]
    for line in ("START RequestId: ", "END RequestId: ", "REPORT RequestId: "):
        assert line + request_id in log, log
    assert "line from the function" in log


def test_function_error_is_unhandled(client):
    resp = invoke(client, {"raise": "boom"})
    assert resp["StatusCode"] == 200  # function errors do not change the status
    assert resp["FunctionError"] == "Unhandled"
    body = json.loads(resp["Payload"].read())
    assert body["errorMessage"] == "boom"
    assert body["errorType"] == "RuntimeError"


def test_dry_run(client):
    resp = invoke(client, {}, InvocationType="DryRun")
    assert resp["StatusCode"] == 204


def test_unknown_function(client):
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="no-such-function", Payload=b"{}")


def stream(client, event):
    resp = client.invoke_with_response_stream(
        FunctionName=FUNCTION, Payload=json.dumps(event).encode(), LogType="Tail"
    )
    assert resp["StatusCode"] == 200
    chunks, complete = [], None
    for event in resp["EventStream"]:
        if "PayloadChunk" in event:
            chunks.append(event["PayloadChunk"]["Payload"])
        if "InvokeComplete" in event:
            complete = event["InvokeComplete"]
    return b"".join(chunks), complete


def test_invoke_with_response_stream(client):
    payload, complete = stream(client, {"streamed": True})
    assert json.loads(payload)["echo"] == {"streamed": True}
    assert complete is not None and "ErrorCode" not in complete
    assert "START RequestId:" in base64.b64decode(complete["LogResult"]).decode()


def test_invoke_with_response_stream_reports_function_errors(client):
    payload, complete = stream(client, {"raise": "streamed boom"})
    assert payload == b""
    assert complete["ErrorCode"] == "Unhandled"
    assert complete["ErrorDetails"] == "streamed boom"
