"""Secrets from the environment or a Secret-volume directory; net -> aiokafka options."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest

from knray.manifests.kafka_source import KafkaNetSpec
from knray.manifests.sources import SecretValueFromSource
from knray.sources.kafka_security import MissingSecretError, SecretResolver, kafka_client_options


def ref(name: str, key: str, optional: bool | None = None) -> SecretValueFromSource:
    return SecretValueFromSource.model_validate(
        {"secretKeyRef": {"name": name, "key": key, "optional": optional}}
    )


def test_env_variable_name() -> None:
    assert SecretResolver.env_name("my-creds", "user") == "KNRAY_SECRET_MY_CREDS_USER"
    assert SecretResolver.env_name("kafka.tls", "ca.crt") == "KNRAY_SECRET_KAFKA_TLS_CA_CRT"


def test_env_wins_over_files(tmp_path: Path) -> None:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "user").write_text("from-file")
    resolver = SecretResolver(env={"KNRAY_SECRET_CREDS_USER": "from-env"}, secrets_dir=tmp_path)
    assert resolver.resolve(ref("creds", "user"), "net.sasl.user") == "from-env"


def test_files_like_a_secret_volume(tmp_path: Path) -> None:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "password").write_text("s3cret")
    resolver = SecretResolver(env={"KNRAY_SECRETS_DIR": str(tmp_path)})
    assert resolver.resolve(ref("creds", "password"), "net.sasl.password") == "s3cret"


def test_missing_secret_names_secret_key_and_both_places(tmp_path: Path) -> None:
    resolver = SecretResolver(env={}, secrets_dir=tmp_path)
    with pytest.raises(MissingSecretError) as caught:
        resolver.resolve(ref("creds", "user"), "net.sasl.user")
    message = str(caught.value)
    for part in ("net.sasl.user", "'creds'", "'user'", "KNRAY_SECRET_CREDS_USER", "creds/user"):
        assert part in message
    assert isinstance(caught.value, LookupError)
    with pytest.raises(MissingSecretError, match="KNRAY_SECRETS_DIR"):
        SecretResolver(env={}).resolve(ref("creds", "user"), "net.sasl.user")


def test_optional_and_unset_references_resolve_to_none() -> None:
    resolver = SecretResolver(env={})
    assert resolver.resolve(ref("creds", "user", optional=True), "x") is None
    assert resolver.resolve(None, "x") is None


def test_plaintext_by_default() -> None:
    assert kafka_client_options(KafkaNetSpec(), SecretResolver(env={})) == {
        "security_protocol": "PLAINTEXT"
    }


def test_sasl_scram_over_plaintext() -> None:
    net = KafkaNetSpec.model_validate(
        {
            "sasl": {
                "enable": True,
                "user": {"secretKeyRef": {"name": "c", "key": "user"}},
                "password": {"secretKeyRef": {"name": "c", "key": "password"}},
                "type": {"secretKeyRef": {"name": "c", "key": "type"}},
            }
        }
    )
    env = {
        "KNRAY_SECRET_C_USER": "u",
        "KNRAY_SECRET_C_PASSWORD": "p",
        "KNRAY_SECRET_C_TYPE": "scram-sha-512",
    }
    assert kafka_client_options(net, SecretResolver(env=env)) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
    }


def test_sasl_type_defaults_to_plain_and_rejects_unknown() -> None:
    net = KafkaNetSpec.model_validate({"sasl": {"enable": True}})
    assert kafka_client_options(net, SecretResolver(env={}))["sasl_mechanism"] == "PLAIN"
    net = KafkaNetSpec.model_validate(
        {"sasl": {"enable": True, "type": {"secretKeyRef": {"name": "c", "key": "type"}}}}
    )
    with pytest.raises(ValueError, match="unsupported SASL mechanism"):
        kafka_client_options(net, SecretResolver(env={"KNRAY_SECRET_C_TYPE": "GSSAPI"}))


def _self_signed(directory: Path) -> tuple[str, str]:
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=knray-test", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert.read_text(), key.read_text()


def test_tls_with_ca_and_client_certificate_over_sasl(tmp_path: Path) -> None:
    try:
        cert, key = _self_signed(tmp_path)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("openssl is not available")
    secrets = tmp_path / "secrets" / "tls"
    secrets.mkdir(parents=True)
    for name, text in {"ca.crt": cert, "user.crt": cert, "user.key": key}.items():
        (secrets / name).write_text(text)
    net = KafkaNetSpec.model_validate(
        {
            "sasl": {"enable": True},
            "tls": {
                "enable": True,
                "caCert": {"secretKeyRef": {"name": "tls", "key": "ca.crt"}},
                "cert": {"secretKeyRef": {"name": "tls", "key": "user.crt"}},
                "key": {"secretKeyRef": {"name": "tls", "key": "user.key"}},
            },
        }
    )
    options = kafka_client_options(net, SecretResolver(env={}, secrets_dir=tmp_path / "secrets"))
    assert options["security_protocol"] == "SASL_SSL"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert any("knray-test" in str(ca.get("subject")) for ca in context.get_ca_certs())


def test_tls_needs_both_cert_and_key() -> None:
    net = KafkaNetSpec.model_validate(
        {"tls": {"enable": True, "cert": {"secretKeyRef": {"name": "t", "key": "c"}}}}
    )
    with pytest.raises(ValueError, match="both cert and key"):
        kafka_client_options(net, SecretResolver(env={"KNRAY_SECRET_T_C": "x"}))
