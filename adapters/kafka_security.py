"""How every Kafka client of the stack connects: plaintext by default (the local broker on
loopback), TLS and/or SASL for a managed cluster (docs/operations.md, "Running against
managed services").

    RECALLSTACK_KAFKA_SECURITY_PROTOCOL   PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL
    RECALLSTACK_KAFKA_SASL_MECHANISM      PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* only)
    RECALLSTACK_KAFKA_SASL_USERNAME       SASL_* only
    RECALLSTACK_KAFKA_SASL_PASSWORD       SASL_* only
    RECALLSTACK_KAFKA_SSL_CAFILE          PEM certificates to trust (default: the system's)
    RECALLSTACK_KAFKA_SSL_CERTFILE        a client certificate, for mutual TLS
    RECALLSTACK_KAFKA_SSL_KEYFILE         its key (when not in the certificate file)

settings.py parses them (Settings.kafka_security) and the composition root installs the value
here (`use`). Every producer, consumer and admin client adds `client_options()` to its
arguments, the faust workers `faust_credentials()`. Bad values fail at start with the variable
named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
PREFIX = "RECALLSTACK_KAFKA_"


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line or a traceback
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @classmethod
    def parse(cls, env: Mapping[str, str]) -> "KafkaSecurity":
        """From the environment; ValueError naming the variable when something does not fit."""
        def get(name: str) -> str | None:
            value = env.get(PREFIX + name, "").strip()
            return value or None

        protocol = (get("SECURITY_PROTOCOL") or "PLAINTEXT").upper()
        if protocol not in PROTOCOLS:
            raise ValueError(f"{PREFIX}SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        sasl = {name: get(name) for name in ("SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD")}
        tls = {name: get(name) for name in ("SSL_CAFILE", "SSL_CERTFILE", "SSL_KEYFILE")}
        if protocol.startswith("SASL_"):
            missing = [PREFIX + name for name, value in sasl.items() if value is None]
            if missing:
                raise ValueError(f"{PREFIX}SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}")
            mechanism = sasl["SASL_MECHANISM"].upper()
            if mechanism not in MECHANISMS:
                raise ValueError(f"{PREFIX}SASL_MECHANISM must be one of {', '.join(MECHANISMS)}, got {mechanism!r}")
        else:
            given = [PREFIX + name for name, value in sasl.items() if value is not None]
            if given:
                raise ValueError(f"{', '.join(given)} set, but {PREFIX}SECURITY_PROTOCOL is {protocol}: "
                                 "use SASL_SSL or SASL_PLAINTEXT")
            mechanism = None
        if protocol not in ("SSL", "SASL_SSL"):
            given = [PREFIX + name for name, value in tls.items() if value is not None]
            if given:
                raise ValueError(f"{', '.join(given)} set, but {PREFIX}SECURITY_PROTOCOL is {protocol}: "
                                 "use SSL or SASL_SSL")
        files = {}
        for name, value in tls.items():
            if value is not None and not Path(value).is_file():
                raise ValueError(f"{PREFIX}{name}: no such file: {value}")
            files[name] = Path(value) if value else None
        if files["SSL_KEYFILE"] and not files["SSL_CERTFILE"]:
            raise ValueError(f"{PREFIX}SSL_KEYFILE needs {PREFIX}SSL_CERTFILE")
        return cls(protocol, mechanism, sasl["SASL_USERNAME"], sasl["SASL_PASSWORD"], files["SSL_CAFILE"],
                   files["SSL_CERTFILE"], files["SSL_KEYFILE"])

    def ssl_context(self):
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(cafile=str(self.cafile) if self.cafile else None,
                                  certfile=str(self.certfile) if self.certfile else None,
                                  keyfile=str(self.keyfile) if self.keyfile else None)

    def client_options(self) -> dict:
        """Keyword arguments of aiokafka's producers, consumers and admin clients (none for plaintext)."""
        if self.protocol == "PLAINTEXT":
            return {}
        options: dict = {"security_protocol": self.protocol}
        if self.sasl:
            options.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username,
                           sasl_plain_password=self.password)
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        return options

    def faust_credentials(self):
        """faust.App's broker_credentials (None for plaintext)."""
        import faust

        if self.sasl:
            return faust.SASLCredentials(username=self.username, password=self.password,
                                         mechanism=self.sasl_mechanism,
                                         ssl_context=self.ssl_context() if self.tls else None)
        if self.tls:
            return faust.SSLCredentials(self.ssl_context())
        return None


_installed = [KafkaSecurity()]


def use(security: KafkaSecurity) -> None:
    """Installed by the composition root from the process's Settings (bootstrap.settings, the
    CLI's load_settings), so that each client need not carry it through every constructor."""
    _installed[0] = security


def current() -> KafkaSecurity:
    """This process's: plaintext until the composition root installs its settings'."""
    return _installed[0]


def client_options() -> dict:
    return current().client_options()


def faust_credentials():
    return current().faust_credentials()
