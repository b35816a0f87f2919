"""Secrets from the environment or a Secret-volume directory; Knative's Kafka security settings
(a KafkaSource's ``net``, a Kafka Broker's auth Secret) -> aiokafka options."""

from __future__ import annotations

import logging
import pickle
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.protocol.admin import SaslAuthenticateRequest_v1
from cryptography.hazmat.primitives import serialization

from knray.manifests.kafka_source import KafkaNetSpec
from knray.manifests.sources import SecretValueFromSource
from knray.sources.kafka_connect import KafkaConnectError, connect_error
from knray.sources.kafka_security import (
    KafkaSecurity,
    KafkaSecurityError,
    MissingSecretError,
    SecretResolver,
    broker_secret_security,
    kafka_client_options,
    kafka_source_security,
)
from tests.support.tls import TestCA

PASSWORD = "pw-that-must-not-leak-7f3a"


def ref(name: str, key: str, optional: bool | None = None) -> SecretValueFromSource:
    return SecretValueFromSource.model_validate(
        {"secretKeyRef": {"name": name, "key": key, "optional": optional}}
    )


def sasl_net(**extra: Any) -> KafkaNetSpec:
    return KafkaNetSpec.model_validate(
        {
            "sasl": {
                "enable": True,
                "user": {"secretKeyRef": {"name": "c", "key": "user"}},
                "password": {"secretKeyRef": {"name": "c", "key": "password"}},
                "type": {"secretKeyRef": {"name": "c", "key": "type"}},
            },
            **extra,
        }
    )


def creds(mechanism: str | None = "SCRAM-SHA-512") -> dict[str, str]:
    env = {"KNRAY_SECRET_C_USER": "u", "KNRAY_SECRET_C_PASSWORD": PASSWORD}
    if mechanism is not None:
        env["KNRAY_SECRET_C_TYPE"] = mechanism
    return env


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


# --- SecretResolver ----------------------------------------------------------------------
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


def test_a_default_resolver_reads_the_environment_where_it_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A resolver crosses to Ray actors pickled: it must carry no value and read the actor's
    # environment there.
    monkeypatch.delenv("KNRAY_SECRET_C_USER", raising=False)
    shipped = pickle.dumps(SecretResolver())
    assert b"from-actor" not in shipped
    monkeypatch.setenv("KNRAY_SECRET_C_USER", "from-actor")
    assert pickle.loads(shipped).lookup("c", "user") == "from-actor"
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "password").write_text(PASSWORD)
    by_dir = pickle.loads(pickle.dumps(SecretResolver(secrets_dir=tmp_path)))
    assert by_dir.lookup("c", "password") == PASSWORD
    assert PASSWORD not in repr(SecretResolver(env=creds()))


# --- a KafkaSource's net -----------------------------------------------------------------
def test_plaintext_by_default() -> None:
    assert kafka_client_options(KafkaNetSpec(), SecretResolver(env={})) == {
        "security_protocol": "PLAINTEXT"
    }


def test_sasl_scram_over_plaintext() -> None:
    assert kafka_client_options(sasl_net(), SecretResolver(env=creds())) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u",
        "sasl_plain_password": PASSWORD,
    }


def test_sasl_type_defaults_to_plain_and_is_spelled_as_knative_spells_it() -> None:
    net = KafkaNetSpec.model_validate(
        {"sasl": {"enable": True, "user": ref("c", "user"), "password": ref("c", "password")}}
    )
    assert kafka_client_options(net, SecretResolver(env=creds()))["sasl_mechanism"] == "PLAIN"
    # A file written with `echo` ends in a newline: surrounding space is not part of a name.
    security = kafka_source_security(sasl_net(), SecretResolver(env=creds("SCRAM-SHA-256\n")))
    assert security.mechanism == "SCRAM-SHA-256"
    # Knative compares the names exactly (control-plane security/secret.go), so does knray.
    for wrong in ("scram-sha-512", "GSSAPI-ish", PASSWORD):
        with pytest.raises(KafkaSecurityError, match=r"net\.sasl\.type: not a SASL mechanism") as e:
            kafka_source_security(sasl_net(), SecretResolver(env=creds(wrong)))
        assert wrong not in str(e.value)
    with pytest.raises(KafkaSecurityError, match="OAUTHBEARER is not supported by knray"):
        kafka_source_security(sasl_net(), SecretResolver(env=creds("OAUTHBEARER")))


def test_sasl_needs_a_user_and_a_password() -> None:
    net = KafkaNetSpec.model_validate({"sasl": {"enable": True}})
    with pytest.raises(KafkaSecurityError, match=r"net.sasl.user: required"):
        kafka_source_security(net, SecretResolver(env={}))
    env = {**creds(), "KNRAY_SECRET_C_PASSWORD": ""}
    with pytest.raises(KafkaSecurityError, match=r"net.sasl.password: required \(non-empty\)"):
        kafka_source_security(sasl_net(), SecretResolver(env=env))
    with pytest.raises(MissingSecretError, match="KNRAY_SECRET_C_PASSWORD"):
        kafka_source_security(
            sasl_net(),
            SecretResolver(env={"KNRAY_SECRET_C_USER": "u", "KNRAY_SECRET_C_TYPE": "PLAIN"}),
        )


def test_disabled_parts_are_not_read() -> None:
    net = KafkaNetSpec.model_validate(
        {
            "sasl": {"enable": False, "user": ref("absent", "user")},
            "tls": {"enable": False, "caCert": ref("absent", "ca")},
        }
    )
    assert kafka_client_options(net, SecretResolver(env={})) == {"security_protocol": "PLAINTEXT"}


def test_tls_with_ca_and_client_certificate_over_sasl(tmp_path: Path, ca: TestCA) -> None:
    client = ca.identity("client.knray.test")
    secrets = tmp_path / "tls"
    secrets.mkdir()
    for name, text in {"ca.crt": ca.cert, "user.crt": client.cert, "user.key": client.key}.items():
        (secrets / name).write_text(text)
    net = sasl_net(
        tls={
            "enable": True,
            "caCert": {"secretKeyRef": {"name": "tls", "key": "ca.crt"}},
            "cert": {"secretKeyRef": {"name": "tls", "key": "user.crt"}},
            "key": {"secretKeyRef": {"name": "tls", "key": "user.key"}},
        }
    )
    security = kafka_source_security(net, SecretResolver(env=creds(), secrets_dir=tmp_path))
    assert security.protocol == "SASL_SSL"
    assert security.client_certificate
    context = security.client_options()["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    # Only the given CA is trusted (Knative: RootCAs is the ca.crt pool), not the system's.
    assert len(context.get_ca_certs()) == 1
    described = repr(security)
    assert described == (
        "KafkaSecurity(SASL_SSL with SASL mechanism SCRAM-SHA-512 and a client certificate "
        "(settings from spec.net))"
    )
    assert PASSWORD not in described


def test_tls_without_ca_trusts_the_system_and_needs_no_client_certificate() -> None:
    # Knative asks for user.skip here, which a KafkaSource cannot say (issue #2162).
    net = KafkaNetSpec.model_validate({"tls": {"enable": True}})
    security = kafka_source_security(net, SecretResolver(env={}))
    assert (security.protocol, security.client_certificate) == ("SSL", False)


def test_tls_problems_are_named_without_their_content(ca: TestCA) -> None:
    def tls(**refs: str) -> KafkaNetSpec:
        return KafkaNetSpec.model_validate(
            {"tls": {"enable": True, **{k: ref("t", v) for k, v in refs.items()}}}
        )

    client = ca.identity("client")
    other = TestCA().identity("other")
    encrypted = serialization.load_pem_private_key(client.key.encode(), None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"key-password"),
    )
    env = {
        "KNRAY_SECRET_T_CA": "-----BEGIN CERTIFICATE-----\nnot base64\n",
        "KNRAY_SECRET_T_CERT": client.cert,
        "KNRAY_SECRET_T_KEY": client.key,
        "KNRAY_SECRET_T_OTHER": other.key,
        "KNRAY_SECRET_T_ENCRYPTED": encrypted.decode(),
    }
    resolver = SecretResolver(env=env)
    with pytest.raises(KafkaSecurityError, match=r"net\.tls\.caCert: not a PEM certificate"):
        kafka_source_security(tls(caCert="ca"), resolver)
    with pytest.raises(KafkaSecurityError, match="needs both cert and key"):
        kafka_source_security(tls(cert="cert"), resolver)
    with pytest.raises(KafkaSecurityError, match="cannot load the client certificate") as e:
        kafka_source_security(tls(cert="cert", key="other"), resolver)
    assert "PRIVATE KEY" not in str(e.value)
    with pytest.raises(KafkaSecurityError, match="the key is encrypted"):
        kafka_source_security(tls(cert="cert", key="encrypted"), resolver)


# --- a Kafka Broker's auth Secret --------------------------------------------------------
def broker(values: dict[str, str], secret: str = "kafka-auth") -> KafkaSecurity:
    env = {SecretResolver.env_name(secret, key): value for key, value in values.items()}
    return broker_secret_security(secret, SecretResolver(env=env))


def test_broker_secret_protocols(ca: TestCA) -> None:
    client = ca.identity("client")
    assert broker({"protocol": "PLAINTEXT"}).client_options() == {"security_protocol": "PLAINTEXT"}
    sasl = broker({"protocol": "SASL_PLAINTEXT", "user": "u", "password": PASSWORD})
    assert sasl.client_options() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",  # Knative's default
        "sasl_plain_username": "u",
        "sasl_plain_password": PASSWORD,
    }
    scram = broker(
        {
            "protocol": "SASL_SSL\n",
            "sasl.mechanism": "SCRAM-SHA-256",
            "user": "u",
            "password": PASSWORD,
            "ca.crt": ca.cert,
        }
    )
    assert (scram.protocol, scram.mechanism, scram.client_certificate) == (
        "SASL_SSL",
        "SCRAM-SHA-256",
        False,
    )
    assert "ssl_context" in scram.client_options()
    assert repr(scram) == (
        "KafkaSecurity(SASL_SSL with SASL mechanism SCRAM-SHA-256 "
        "(settings from Secret 'kafka-auth'))"
    )
    mutual = broker({"protocol": "SSL", "user.crt": client.cert, "user.key": client.key})
    assert (mutual.protocol, mutual.client_certificate) == ("SSL", True)
    # The data plane presents a client certificate with SASL_SSL too, when both keys are there.
    both = broker(
        {
            "protocol": "SASL_SSL",
            "user": "u",
            "password": PASSWORD,
            "user.crt": client.cert,
            "user.key": client.key,
        }
    )
    assert both.client_certificate
    skipped = broker({"protocol": "SSL", "user.skip": "true"})
    assert (skipped.protocol, skipped.client_certificate) == ("SSL", False)


def test_broker_secret_problems_name_the_broker_and_the_key() -> None:
    where = (
        "Broker shop/default: ConfigMap knative-eventing/kafka-broker-config auth.secret.ref.name"
    )
    with pytest.raises(MissingSecretError) as missing:
        broker_secret_security("kafka-auth", SecretResolver(env={}), where)
    assert str(missing.value) == (
        f"{where}: secret 'kafka-auth' key 'protocol' not found: looked in environment variable "
        "KNRAY_SECRET_KAFKA_AUTH_PROTOCOL and a file kafka-auth/protocol under "
        "$KNRAY_SECRETS_DIR (not set)"
    )
    env = {"KNRAY_SECRET_KAFKA_AUTH_PROTOCOL": "TLS"}
    with pytest.raises(KafkaSecurityError) as unsupported:
        broker_secret_security("kafka-auth", SecretResolver(env=env), where)
    assert str(unsupported.value) == (
        f"{where}: Secret 'kafka-auth' key 'protocol': unsupported protocol (supported: "
        "PLAINTEXT, SASL_PLAINTEXT, SSL, SASL_SSL)"
    )
    with pytest.raises(KafkaSecurityError, match=r"key 'user.crt' is missing\); set 'user.skip"):
        broker({"protocol": "SSL"})
    with pytest.raises(KafkaSecurityError, match=r"'user\.skip': expected true or false"):
        broker({"protocol": "SSL", "user.skip": "yes"})
    with pytest.raises(MissingSecretError, match="KNRAY_SECRET_KAFKA_AUTH_PASSWORD"):
        broker({"protocol": "SASL_PLAINTEXT", "user": "u"})
    with pytest.raises(KafkaSecurityError, match=r"key 'sasl\.mechanism': not a SASL mechanism"):
        broker({"protocol": "SASL_SSL", "sasl.mechanism": "plain", "user": "u", "password": "p"})


# --- nothing leaks -----------------------------------------------------------------------
def test_aiokafka_request_logs_never_carry_sasl_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # aiokafka logs each request at DEBUG; a SASL PLAIN request holds the password in clear.
    security = broker({"protocol": "SASL_PLAINTEXT", "user": "u", "password": PASSWORD})
    security.client_options()  # any client built with SASL installs the redaction
    payload = f"u\0u\0{PASSWORD}".encode()
    request = SaslAuthenticateRequest_v1(payload)
    assert PASSWORD in repr(request)  # what aiokafka would log
    with caplog.at_level(logging.DEBUG, logger="aiokafka"):
        conn = logging.getLogger("aiokafka.conn")
        conn.debug("Request to %s:%d %d: %s", "h", 1, 2, request)
        conn.info("Authenticated as %s via %s", "secret-user", "PLAIN")
    assert "SaslAuthenticateRequest(<redacted>)" in caplog.text
    assert "Authenticated as <user from the Secret> via PLAIN" in caplog.text
    assert PASSWORD not in caplog.text
    assert "secret-user" not in caplog.text


async def test_a_refused_connection_is_explained() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens
    security = broker({"protocol": "SASL_PLAINTEXT", "user": "u", "password": PASSWORD})
    error = await connect_error(
        "KafkaSource shop/orders",
        f"127.0.0.1:{port}",
        security,
        KafkaConnectionError("Unable to bootstrap"),
    )
    assert isinstance(error, KafkaConnectError)
    assert isinstance(error, ConnectionError)
    message = str(error)
    assert message.startswith(
        f"KafkaSource shop/orders: cannot connect to Kafka at 127.0.0.1:{port} over "
        "SASL_PLAINTEXT with SASL mechanism PLAIN (settings from Secret 'kafka-auth'): "
    )
    assert "refused" in message
    assert PASSWORD not in message
