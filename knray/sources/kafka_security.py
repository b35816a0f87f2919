"""KafkaSource ``net`` (SASL, TLS) -> aiokafka client options, and Secret resolution (pure).

A Secret reference ``{name: N, key: K}`` is resolved, in order, from:

1. the environment variable ``KNRAY_SECRET_<N>_<K>``: name and key upper-cased, every
   character other than A-Z and 0-9 replaced by ``_`` (``my-creds``/``user`` ->
   ``KNRAY_SECRET_MY_CREDS_USER``);
2. the file ``<KNRAY_SECRETS_DIR>/<N>/<K>``, the layout of a Kubernetes Secret volume.

Knative's semantics (control-plane ``security`` package): SASL with TLS is ``SASL_SSL``;
the SASL type defaults to PLAIN; TLS without a CA certificate trusts the system store.
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from knray.errors import KnrayError
from knray.manifests.kafka_source import KafkaNetSpec
from knray.manifests.sources import SecretValueFromSource

__all__ = [
    "SASL_MECHANISMS",
    "SECRETS_DIR_ENV",
    "MissingSecretError",
    "SecretResolver",
    "kafka_client_options",
]

SECRETS_DIR_ENV: Final = "KNRAY_SECRETS_DIR"
_ENV_PREFIX: Final = "KNRAY_SECRET_"
_NOT_ALNUM: Final = re.compile(r"[^A-Z0-9]")
SASL_MECHANISMS: Final = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})


class MissingSecretError(KnrayError, LookupError):
    """A referenced Secret key is neither in the environment nor in the secrets directory."""


class SecretResolver:
    """Resolves Secret references from environment variables, then files (see module doc)."""

    def __init__(
        self, env: Mapping[str, str] | None = None, secrets_dir: str | Path | None = None
    ) -> None:
        self._env = os.environ if env is None else env
        directory = secrets_dir if secrets_dir is not None else self._env.get(SECRETS_DIR_ENV)
        self._dir = Path(directory) if directory else None

    @staticmethod
    def env_name(name: str, key: str) -> str:
        """The environment variable that holds ``key`` of Secret ``name``."""
        return _ENV_PREFIX + _NOT_ALNUM.sub("_", f"{name}_{key}".upper())

    def lookup(self, name: str, key: str) -> str | None:
        """The value, or None when neither place has it."""
        value = self._env.get(self.env_name(name, key))
        if value is not None:
            return value
        if self._dir is not None:
            path = self._dir / name / key
            if path.is_file():
                return path.read_text()
        return None

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
        place = (
            f"file {self._dir / selector.name / selector.key}"
            if self._dir is not None
            else f"a file {selector.name}/{selector.key} under ${SECRETS_DIR_ENV} (not set)"
        )
        raise MissingSecretError(
            f"{what}: secret {selector.name!r} key {selector.key!r} not found: looked in "
            f"environment variable {self.env_name(selector.name, selector.key)} and {place}"
        )


def kafka_client_options(net: KafkaNetSpec, secrets: SecretResolver) -> dict[str, Any]:
    """aiokafka keyword arguments for ``net``: ``security_protocol``, SASL, ``ssl_context``."""
    sasl, tls = net.sasl, net.tls
    options: dict[str, Any] = {}
    if tls.enable:
        options["ssl_context"] = _ssl_context(
            ca=secrets.resolve(tls.ca_cert, "net.tls.caCert"),
            cert=secrets.resolve(tls.cert, "net.tls.cert"),
            key=secrets.resolve(tls.key, "net.tls.key"),
        )
    if sasl.enable:
        mechanism = (secrets.resolve(sasl.type, "net.sasl.type") or "PLAIN").strip().upper()
        if mechanism not in SASL_MECHANISMS:
            raise ValueError(
                f"net.sasl.type: unsupported SASL mechanism {mechanism!r} "
                f"(supported: {', '.join(sorted(SASL_MECHANISMS))})"
            )
        options["security_protocol"] = "SASL_SSL" if tls.enable else "SASL_PLAINTEXT"
        options["sasl_mechanism"] = mechanism
        options["sasl_plain_username"] = secrets.resolve(sasl.user, "net.sasl.user")
        options["sasl_plain_password"] = secrets.resolve(sasl.password, "net.sasl.password")
    else:
        options["security_protocol"] = "SSL" if tls.enable else "PLAINTEXT"
    return options


def _ssl_context(ca: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
    if cert or key:
        if not (cert and key):
            raise ValueError("net.tls: a client certificate needs both cert and key")
        # load_cert_chain reads files only: write the PEMs to a private directory, then delete.
        with tempfile.TemporaryDirectory(prefix="knray-tls-") as directory:
            cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
            for path, pem in ((cert_path, cert), (key_path, key)):
                path.touch(mode=0o600)
                path.write_text(pem)
            context.load_cert_chain(cert_path, key_path)
    return context
