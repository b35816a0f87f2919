"""The Apache Kafka test broker's generated settings (no JVM started)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from knray.testing import apache_kafka


def test_cluster_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # A UUID whose base64 starts with "-" (0xf8...) comes first: it must be skipped.
    dashed = bytes([0xF8]) + bytes(15)
    plain = bytes(16)
    draws = iter([dashed, plain])

    class FakeUUID:
        def __init__(self) -> None:
            self.bytes = next(draws)

    monkeypatch.setattr(apache_kafka.uuid, "uuid4", FakeUUID)
    assert base64.urlsafe_b64encode(dashed).decode().startswith("-")
    assert apache_kafka._cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"


def test_a_broker_key_that_is_not_pkcs8_is_refused_naming_the_file(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")
    chain = tmp_path / "chain.pem"
    chain.write_text("")
    tls = apache_kafka.KafkaTLSFiles(cert_chain=chain, key=key)
    with pytest.raises(ValueError, match="PKCS#8") as caught:
        apache_kafka._properties(tmp_path, {"PLAINTEXT": 1, "CONTROLLER": 2, "SSL": 3}, tls, False)
    assert str(key) in str(caught.value)
