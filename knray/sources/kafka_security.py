"""Kafka client security (SASL, TLS) as Knative configures it -> aiokafka options (pure).

Two Knative shapes, one result (:class:`KafkaSecurity`):

- a KafkaSource's ``spec.net`` (``sasl.{enable,user,password,type}``,
  ``tls.{enable,cert,key,caCert}``, each value a ``secretKeyRef``): :func:`kafka_source_security`;
- the Secret a Kafka Broker's ``kafka-broker-config`` names in ``auth.secret.ref.name`` (keys
  ``protocol``, ``sasl.mechanism``, ``user``, ``password``, ``ca.crt``, ``user.crt``,
  ``user.key``, ``user.skip``): :func:`broker_secret_security`.

Rules, from knative-extensions/eventing-kafka-broker ``control-plane/pkg/security``
(``secret.go``, ``secrets_provider_net_spec.go``) and the data plane's ``KafkaClientsAuth``:
the protocol of a KafkaSource follows its ``enable`` flags (SASL with TLS is ``SASL_SSL``); a
Broker's Secret must say its ``protocol``; the SASL mechanism defaults to ``PLAIN`` and is one of
``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512``, spelled exactly so; SASL needs a user and a
password; TLS without a CA certificate trusts the system's roots, with one trusts only it;
TLS 1.2 at least; a client certificate needs its key. Where knray differs: a KafkaSource may use
TLS without a client certificate (Knative asks for ``user.skip``, which its ``net`` cannot
express, issue #2162); PKCS #1 keys are accepted (Knative refuses them for its Java clients).

A Secret reference ``{name: N, key: K}`` is resolved, in order, from:

1. the environment variable ``KNRAY_SECRET_<N>_<K>``: name and key upper-cased, every
   character other than A-Z and 0-9 replaced by ``_`` (``my-creds``/``user`` ->
   ``KNRAY_SECRET_MY_CREDS_USER``);
2. the file ``<KNRAY_SECRETS_DIR>/<N>/<K>``, the layout of a Kubernetes Secret volume.

No value read from a Secret ever appears in a message, a ``repr`` or a log line of knray.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NoReturn

from knray.errors import KnrayError
from knray.manifests.kafka_source import KafkaNetSpec
from knray.manifests.sources import SecretValueFromSource

__all__ = [
    "PROTOCOLS",
    "SASL_MECHANISMS",
    "SECRETS_DIR_ENV",
    "KafkaSecurity",
    "KafkaSecurityError",
    "MissingSecretError",
    "SecretResolver",
    "broker_secret_security",
    "kafka_client_options",
    "kafka_source_security",
]

SECRETS_DIR_ENV: Final = "KNRAY_SECRETS_DIR"
_ENV_PREFIX: Final = "KNRAY_SECRET_"
_NOT_ALNUM: Final = re.compile(r"[^A-Z0-9]")
PROTOCOLS: Final = ("PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL")
SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Known to Knative, not to knray (aiokafka has them, but they need more than a Secret's keys).
_UNSUPPORTED_MECHANISMS: Final = frozenset({"OAUTHBEARER", "GSSAPI"})
# Go's strconv.ParseBool, which Knative uses for ``user.skip``.
_BOOLEANS: Final = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}


class MissingSecretError(KnrayError, LookupError):
    """A referenced Secret key is neither in the environment nor in the secrets directory."""


class KafkaSecurityError(KnrayError, ValueError):
    """Security settings that cannot make a Kafka client; the message names the setting."""


class SecretResolver:
    """Resolves Secret references from environment variables, then files (see module doc).

    Without arguments it reads the environment of the process that uses it, when it uses it,
    so a resolver handed to a Ray actor reads the actor's environment (and carries no value).
    """

    def __init__(
        self, env: Mapping[str, str] | None = None, secrets_dir: str | Path | None = None
    ) -> None:
        self._given_env = env
        self._given_dir = Path(secrets_dir) if secrets_dir is not None else None

    @property
    def _env(self) -> Mapping[str, str]:
        return os.environ if self._given_env is None else self._given_env

    @property
    def _dir(self) -> Path | None:
        if self._given_dir is not None:
            return self._given_dir
        directory = self._env.get(SECRETS_DIR_ENV)
        return Path(directory) if directory else None

    def __repr__(self) -> str:  # never the values of an explicit env
        source = "environment" if self._given_env is None else "given variables"
        return f"SecretResolver({source}, secrets_dir={self._dir})"

    @staticmethod
    def env_name(name: str, key: str) -> str:
        """The environment variable that holds ``key`` of Secret ``name``."""
        return _ENV_PREFIX + _NOT_ALNUM.sub("_", f"{name}_{key}".upper())

    def lookup(self, name: str, key: str) -> str | None:
        """The value, or None when neither place has it."""
        value = self._env.get(self.env_name(name, key))
        if value is not None:
            return value
        directory = self._dir
        if directory is not None:
            path = directory / name / key
            if path.is_file():
                return path.read_text()
        return None

    def missing(self, name: str, key: str, what: str) -> MissingSecretError:
        """The error for a required key found nowhere: names both places looked."""
        directory = self._dir
        place = (
            f"file {directory / name / key}"
            if directory is not None
            else f"a file {name}/{key} under ${SECRETS_DIR_ENV} (not set)"
        )
        return MissingSecretError(
            f"{what}: secret {name!r} key {key!r} not found: looked in "
            f"environment variable {self.env_name(name, key)} and {place}"
        )

    def resolve(self, ref: SecretValueFromSource | None, what: str) -> str | None:
        """The value of a reference; None when unset or optional and missing.

        Raises MissingSecretError naming the secret, the key and both places looked.
        """
        if ref is None or ref.secret_key_ref is None:
            return None
        selector = ref.secret_key_ref
        value = self.lookup(selector.name, selector.key)
        if value is not None or selector.optional:
            return value
        raise self.missing(selector.name, selector.key, what)


@dataclass(frozen=True, repr=False)
class KafkaSecurity:
    """How a Kafka client connects: protocol, SASL credentials, TLS context.

    ``origin`` says where the settings come from (for messages); ``repr`` and
    :meth:`describe` never show a credential.
    """

    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    user: str | None = None
    password: str | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)
    client_certificate: bool = False
    origin: str = ""

    def describe(self) -> str:
        """``SASL_SSL with SASL mechanism SCRAM-SHA-512``, ``SSL with a client certificate``,
        and where the settings come from."""
        extras = [f"SASL mechanism {self.mechanism}"] if self.mechanism else []
        if self.client_certificate:
            extras.append("a client certificate")
        text = f"{self.protocol} with {' and '.join(extras)}" if extras else self.protocol
        return f"{text} (settings from {self.origin})" if self.origin else text

    def __repr__(self) -> str:
        return f"KafkaSecurity({self.describe()})"

    def client_options(self) -> dict[str, Any]:
        """aiokafka keyword arguments: ``security_protocol``, ``ssl_context``, SASL."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.ssl_context is not None:
            options["ssl_context"] = self.ssl_context
        if self.mechanism is not None:
            _redact_sasl_logs()
            options["sasl_mechanism"] = self.mechanism
            options["sasl_plain_username"] = self.user
            options["sasl_plain_password"] = self.password
        return options


def kafka_source_security(net: KafkaNetSpec, secrets: SecretResolver) -> KafkaSecurity:
    """The security of a KafkaSource's ``spec.net`` (only the enabled parts are read)."""
    sasl, tls = net.sasl, net.tls
    context = None
    certificate = False
    if tls.enable:
        cert = secrets.resolve(tls.cert, "net.tls.cert")
        key = secrets.resolve(tls.key, "net.tls.key")
        if bool(cert) != bool(key):
            raise KafkaSecurityError("net.tls: a client certificate needs both cert and key")
        context = _ssl_context(
            secrets.resolve(tls.ca_cert, "net.tls.caCert"), cert, key, "net.tls.caCert", "net.tls"
        )
        certificate = bool(cert)
    if not sasl.enable:
        return KafkaSecurity(
            "SSL" if tls.enable else "PLAINTEXT",
            ssl_context=context,
            client_certificate=certificate,
            origin="spec.net",
        )
    mechanism = _mechanism(secrets.resolve(sasl.type, "net.sasl.type"), "net.sasl.type")
    user = secrets.resolve(sasl.user, "net.sasl.user")
    password = secrets.resolve(sasl.password, "net.sasl.password")
    for value, what in ((user, "net.sasl.user"), (password, "net.sasl.password")):
        if not value:
            raise KafkaSecurityError(f"{what}: required (non-empty) when net.sasl.enable is true")
    return KafkaSecurity(
        "SASL_SSL" if tls.enable else "SASL_PLAINTEXT",
        mechanism,
        user,
        password,
        context,
        certificate,
        origin="spec.net",
    )


def kafka_client_options(net: KafkaNetSpec, secrets: SecretResolver) -> dict[str, Any]:
    """aiokafka keyword arguments for ``net``: ``security_protocol``, SASL, ``ssl_context``."""
    return kafka_source_security(net, secrets).client_options()


def broker_secret_security(
    name: str, secrets: SecretResolver, where: str = "auth.secret.ref.name"
) -> KafkaSecurity:
    """The security a Kafka Broker's auth Secret ``name`` describes (Knative's keys).

    ``where`` starts every message (the Broker, the ConfigMap key that names the Secret).
    """
    what = f"{where}: Secret {name!r}"

    def value(key: str, *, required: bool = False, enumerated: bool = False) -> str | None:
        found = secrets.lookup(name, key)
        if found is not None and enumerated:
            found = found.strip()  # a file written with `echo` ends in a newline
        if required and not found:
            raise secrets.missing(name, key, where)
        return found or None

    protocol = value("protocol", required=True, enumerated=True)
    if protocol not in PROTOCOLS:
        raise KafkaSecurityError(
            f"{what} key 'protocol': unsupported protocol (supported: {', '.join(PROTOCOLS)})"
        )
    context = None
    certificate = False
    if protocol in ("SSL", "SASL_SSL"):
        cert, key = value("user.crt"), value("user.key")
        skip = value("user.skip", enumerated=True)
        if skip is not None and skip not in _BOOLEANS:
            raise KafkaSecurityError(f"{what} key 'user.skip': expected true or false")
        if skip is not None and _BOOLEANS[skip]:
            cert = key = None
        elif protocol == "SSL" and not (cert and key):
            # Knative's control plane: with SSL, client authentication unless user.skip.
            missing = "user.crt" if not cert else "user.key"
            raise KafkaSecurityError(
                f"{what}: protocol SSL needs a client certificate (key {missing!r} is "
                "missing); set 'user.skip: true' for TLS without client authentication"
            )
        elif bool(cert) != bool(key):
            raise KafkaSecurityError(f"{what}: a client certificate needs user.crt and user.key")
        ca = value("ca.crt")
        context = _ssl_context(ca, cert, key, f"{what} key 'ca.crt'", f"{what} keys user.crt/key")
        certificate = bool(cert)
    if protocol in ("SSL", "PLAINTEXT"):
        return KafkaSecurity(
            protocol, ssl_context=context, client_certificate=certificate, origin=f"Secret {name!r}"
        )
    mechanism = _mechanism(value("sasl.mechanism", enumerated=True), f"{what} key 'sasl.mechanism'")
    return KafkaSecurity(
        protocol,
        mechanism,
        value("user", required=True),
        value("password", required=True),
        context,
        certificate,
        origin=f"Secret {name!r}",
    )


def _mechanism(raw: str | None, what: str) -> str:
    if raw is None:
        return "PLAIN"  # Knative's default
    mechanism = raw.strip()
    if mechanism in SASL_MECHANISMS:
        return mechanism
    # The value is not echoed: a mistyped Secret might hold anything.
    reason = (
        f"SASL mechanism {mechanism} is not supported by knray"
        if mechanism in _UNSUPPORTED_MECHANISMS
        else "not a SASL mechanism"
    )
    raise KafkaSecurityError(
        f"{what}: {reason} (supported, spelled exactly so: {', '.join(SASL_MECHANISMS)})"
    )


def _ssl_context(
    ca: str | None, cert: str | None, key: str | None, ca_what: str, cert_what: str
) -> ssl.SSLContext:
    try:
        # With a CA, only that CA is trusted (Knative: RootCAs = the ca.crt pool); else the
        # system's roots.
        context = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
    except (ssl.SSLError, ValueError) as error:
        raise KafkaSecurityError(f"{ca_what}: not a PEM certificate ({_reason(error)})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # Knative's clients: TLS 1.2 or later
    if cert and key:
        _load_client_certificate(context, cert, key, cert_what)
    return context


def _load_client_certificate(context: ssl.SSLContext, cert: str, key: str, what: str) -> None:
    def no_password() -> NoReturn:
        raise KafkaSecurityError(f"{what}: the key is encrypted; give an unencrypted PEM key")

    # load_cert_chain reads files only: write the PEMs to a private directory, then delete.
    with tempfile.TemporaryDirectory(prefix="knray-tls-") as directory:
        cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
        for path, pem in ((cert_path, cert), (key_path, key)):
            path.touch(mode=0o600)
            path.write_text(pem)
        try:
            context.load_cert_chain(cert_path, key_path, password=no_password)
        except ssl.SSLError as error:
            raise KafkaSecurityError(
                f"{what}: cannot load the client certificate and key ({_reason(error)})"
            ) from None


def _reason(error: BaseException) -> str:
    # ssl errors name OpenSSL's reason, never the PEM text.
    return str(getattr(error, "reason", None) or error)


class _RedactSaslPayload(logging.Filter):
    """aiokafka logs every request at DEBUG, SASL ones included: for PLAIN that is the
    password in clear (``SaslAuthenticateRequest(sasl_auth_bytes=b'user\\x00user\\x00pw')``);
    and the user name of a successful login at INFO. Both come from a Secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple):
            return True
        if any(_is_sasl_request(arg) for arg in args):
            record.args = tuple(
                "SaslAuthenticateRequest(<redacted>)" if _is_sasl_request(arg) else arg
                for arg in args
            )
        elif record.msg == _LOGIN_MESSAGE and args:
            record.args = ("<user from the Secret>", *args[1:])
        return True


def _is_sasl_request(value: object) -> bool:
    return type(value).__name__.startswith("SaslAuthenticateRequest")


_LOGIN_MESSAGE: Final = "Authenticated as %s via %s"  # aiokafka.conn, after SASL PLAIN/SCRAM
_REDACTION: Final = _RedactSaslPayload()


def _redact_sasl_logs() -> None:
    """Install the filter on aiokafka's connection logger (once; a set of filters)."""
    logging.getLogger("aiokafka.conn").addFilter(_REDACTION)
