"""Certificates made in the test: a CA, a server identity for 127.0.0.1, client identities.

``trustme`` makes them; Kafka's PEM key store reads PKCS#8 keys only, so keys are converted
with ``cryptography`` (trustme writes EC keys in the SEC1 form).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization

from knray.testing.apache_kafka import KafkaTLSFiles

__all__ = ["Identity", "TestCA", "pkcs8"]


def pkcs8(key_pem: bytes) -> str:
    """An unencrypted PKCS#8 PEM of any PEM private key."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass(frozen=True)
class Identity:
    """A certificate chain and its key, as PEM text (what a Secret holds)."""

    cert: str
    key: str


class TestCA:
    """A certificate authority for one test module."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self) -> None:
        self._ca = trustme.CA()

    @property
    def cert(self) -> str:
        """The CA certificate (``ca.crt`` / ``caCert``)."""
        return self._ca.cert_pem.bytes().decode()

    def identity(self, name: str) -> Identity:
        """A certificate for ``name`` (an IP or a host name) signed by this CA."""
        issued = self._ca.issue_cert(name)
        chain = "".join(blob.bytes().decode() for blob in issued.cert_chain_pems)
        return Identity(chain, pkcs8(issued.private_key_pem.bytes()))

    def broker_files(self, folder: Path, *, client_ca: str | None = None) -> KafkaTLSFiles:
        """The broker's identity for 127.0.0.1 written to ``folder``; with ``client_ca`` the
        broker requires client certificates signed by it."""
        folder.mkdir(parents=True, exist_ok=True)
        server = self.identity("127.0.0.1")
        (folder / "chain.pem").write_text(server.cert)
        (folder / "key.pem").write_text(server.key)
        client_ca_path = None
        if client_ca is not None:
            client_ca_path = folder / "client-ca.pem"
            client_ca_path.write_text(client_ca)
        return KafkaTLSFiles(folder / "chain.pem", folder / "key.pem", client_ca_path)
