"""Connections: unix sockets, passwords, ACL users, databases, TLS, against real servers."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from fluxabee import (
    AsyncEngine,
    AsyncEvent,
    BrokerAuthenticationError,
    Config,
    PermissionDeniedError,
    RedisPool,
)
from tests.servers import RedisServer, free_port, missing_server
from tests.tls import tls_binary


async def roundtrip(uri: str, stream: str = "s") -> list[object]:
    """Publish one event and consume it back through ``uri``."""
    config = Config(redis_pools=[RedisPool(uri=uri, streams=[stream])])
    async with AsyncEngine(config) as engine:
        broker = engine.new_context().event_broker()
        await broker.publish_now(stream, {"via": uri.split(":", 1)[0]})
        seen: list[AsyncEvent] = []
        await broker.consumer_many(stream).consume(10, 0, seen.extend)
        return [e.body for e in seen]


async def test_unix_socket(server_factory: Callable[..., RedisServer], tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    server_factory(extra_args=["--unixsocket", str(sock), "--unixsocketperm", "700"])
    assert await roundtrip(f"unix://{sock}?db=2") == [{"via": "unix"}]


async def test_password_and_database(server_factory: Callable[..., RedisServer]) -> None:
    server = server_factory(extra_args=["--requirepass", "s3cret"])
    port = server.port
    assert await roundtrip(f"redis://:s3cret@127.0.0.1:{port}/3") == [{"via": "redis"}]
    for db, expected in ((3, 1), (0, 0)):  # the stream lives in database 3 only
        client = redis.Redis(host="127.0.0.1", port=port, password="s3cret", db=db)
        try:
            assert client.exists("s") == expected
        finally:
            client.close()
    with pytest.raises(BrokerAuthenticationError):
        await roundtrip(f"redis://:wrong@127.0.0.1:{port}/0")


async def test_acl_user_and_missing_permission(
    server_factory: Callable[..., RedisServer],
) -> None:
    server = server_factory()
    client = server.client()
    try:
        client.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "+@all")
        client.execute_command("ACL", "SETUSER", "reader", "on", ">pw", "~*", "+@read")
    finally:
        client.close()
    assert await roundtrip(f"redis://app:pw@127.0.0.1:{server.port}/0") == [{"via": "redis"}]
    with pytest.raises(PermissionDeniedError):
        await roundtrip(f"redis://reader:pw@127.0.0.1:{server.port}/0", stream="t")


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed for the TLS test (apt-get install -y openssl)")
    ca_key, ca_crt = tmp_path / "ca.key", tmp_path / "ca.crt"
    key, csr, crt = tmp_path / "server.key", tmp_path / "server.csr", tmp_path / "server.crt"
    ext = tmp_path / "ext.cnf"
    ext.write_text(  # what Python 3.13's strict X.509 checks ask of a server certificate
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n"
    )

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", str(ca_key), "-out", str(ca_crt))  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(key), "-out", str(csr))  # fmt: skip
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(crt))  # fmt: skip
    return {"ca": ca_crt, "key": key, "crt": crt}


async def test_tls_with_a_verified_certificate(
    server_factory: Callable[..., RedisServer], tls_files: dict[str, Path]
) -> None:
    binary = tls_binary()  # the embedded servers are built without TLS
    if binary is None:
        missing_server("no server binary here is built with TLS (Debian's redis-server is)")
    tls_port = free_port()
    server_factory(
        binary=binary,
        extra_args=[
            "--tls-port", str(tls_port),
            "--tls-cert-file", str(tls_files["crt"]),
            "--tls-key-file", str(tls_files["key"]),
            "--tls-ca-cert-file", str(tls_files["ca"]),
            "--tls-auth-clients", "no",
        ]
    )  # fmt: skip
    uri = f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={tls_files['ca']}"
    assert await roundtrip(uri) == [{"via": "rediss"}]
