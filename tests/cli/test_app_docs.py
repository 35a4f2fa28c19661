"""The example web app (examples/shop.py) under a real ASGI server (uvicorn), worked by
``fluxabee run``; ``fluxabee asyncapi`` validated against the AsyncAPI 3.0 schema subset in
tests/data (no PyPI package ships the official schema)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import msgpack
import pytest
import redis
import yaml

from fluxabee._localserver import free_port
from tests.cli.conftest import Running, cli_env, run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCHEMA = Path(__file__).resolve().parents[1] / "data" / "asyncapi-3.0-subset.schema.json"


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


#: The official AsyncAPI 3.0.0 JSON schema, bundled in npm's ``@asyncapi/specs`` package
#: (``schemas/3.0.0-without-$id.json``); ``.ci/run`` fetches it with ``npm pack`` and names
#: it here. Without it the test below is skipped, saying so.
OFFICIAL_SCHEMA_ENV = "FLUXABEE_ASYNCAPI_SCHEMA"


def test_the_asyncapi_document_of_the_example_validates_against_the_official_schema(
    redis_url: str,
) -> None:
    path = os.environ.get(OFFICIAL_SCHEMA_ENV)
    if not path:
        pytest.skip(
            f"the official AsyncAPI 3.0 schema is not here: {OFFICIAL_SCHEMA_ENV} unset "
            "(.ci/run sets it from npm's @asyncapi/specs when npm is installed)"
        )
    schema = json.loads(Path(path).read_text())
    assert schema["properties"]["asyncapi"]["const"] == "3.0.0"
    env = cli_env(REDIS_URL=redis_url)
    result = run_cli("asyncapi", "shop:app", env=env, cwd=str(EXAMPLES))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(document)] == []
    broken = {**document, "operations": {"x": {"action": "consume", "channel": {"$ref": "#/a"}}}}
    assert list(validator.iter_errors(broken))  # the schema bites


def test_the_asyncapi_document_of_the_example_validates(redis_url: str) -> None:
    env = cli_env(REDIS_URL=redis_url)
    result = run_cli("asyncapi", "shop:app", env=env, cwd=str(EXAMPLES))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(document)
    for broken in (
        {k: v for k, v in document.items() if k != "info"},
        {**document, "asyncapi": "2.6.0"},
        {**document, "operations": {"x": {"action": "consume", "channel": {"$ref": "#/a"}}}},
        {**document, "channels": {"a b": {"address": "a b"}}},
    ):  # the schema bites
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft7Validator(schema).validate(broken)
    for ref in _refs(document):
        _resolve(document, ref)  # every reference points into the document
    channel = document["channels"]["orders"]
    assert channel["address"] == "orders"
    operations = document["operations"]
    assert {op["x-fluxabee-group"] for op in operations.values()} == {"billing", "email"}
    assert {op["action"] for op in operations.values()} == {"receive"}
    payload = document["components"]["messages"]["OrderPlaced"]["payload"]
    assert payload["required"] == ["id", "customer", "total"]
    assert "password" not in result.stdout
    as_yaml = run_cli("asyncapi", "shop:app", "--yaml", env=env, cwd=str(EXAMPLES))
    assert as_yaml.returncode == 0, as_yaml.stderr
    assert yaml.safe_load(as_yaml.stdout) == document


def _until(condition: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.05)


def _post(port: int, path: str, data: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(data).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None


@pytest.fixture
def uvicorn(redis_url: str) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "shop:web", "--port", str(port), "--host", "127.0.0.1"],
        cwd=str(EXAMPLES),
        env=cli_env(REDIS_URL=redis_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield port, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        finally:
            if process.stderr is not None:
                process.stderr.close()


def test_the_fastapi_example_publishes_and_the_same_app_works_the_orders(
    uvicorn: tuple[int, subprocess.Popen[str]],
    redis_url: str,
    rclient: redis.Redis,
    background: Callable[..., Running],
) -> None:
    port, server = uvicorn
    order = {"id": 1, "customer": "ada", "total": 9.5}
    _until(lambda: server.poll() is not None or _post(port, "/orders", order)[0] == 200)
    assert server.poll() is None
    assert _post(port, "/orders", {"id": "x"})[0] == 422  # FastAPI validates the body
    status, reply = _post(port, "/orders", {**order, "id": 2})
    assert status == 200
    entries = rclient.xrange("orders")
    assert reply["id"] == entries[-1][0].decode()
    assert msgpack.unpackb(entries[-1][1][b"s"]) == {"id": 2, "customer": "ada", "total": 9.5}
    assert entries[-1][1][b"customer"] == b"ada"
    worker = background("run", "shop:app", env=cli_env(REDIS_URL=redis_url), cwd=str(EXAMPLES))
    _until(lambda: rclient.xlen("invoices") >= 2)
    assert worker.stop(signal.SIGTERM)[0] == 0
    invoices = sorted(msgpack.unpackb(f[b"s"])["order"] for _, f in rclient.xrange("invoices"))
    assert invoices == [1, 2]
