"""The Kafka connection settings for a managed cluster (adapters/kafka_security.py): what each
combination of RECALLSTACK_KAFKA_* variables gives aiokafka and faust, and the error naming
the variable for each that does not fit. Pure parsing: no broker (the stack's own Kafka is
plaintext on loopback; every client passes these options, tested by every Kafka test)."""

from __future__ import annotations

import ssl

import faust
import pytest

from adapters.kafka_security import KafkaSecurity

P = "RECALLSTACK_KAFKA_"


@pytest.fixture
def pem(tmp_path):
    """A CA bundle file (aiokafka's context loads it: a real certificate, made here)."""
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    path = tmp_path / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_plaintext_is_the_default_and_adds_nothing():
    security = KafkaSecurity.parse({})
    assert security.protocol == "PLAINTEXT" and security.client_options() == {}
    assert security.faust_credentials() is None
    assert KafkaSecurity.parse({P + "SECURITY_PROTOCOL": " plaintext "}).client_options() == {}


def test_sasl_over_tls_with_scram_and_a_ca(pem):
    security = KafkaSecurity.parse({P + "SECURITY_PROTOCOL": "sasl_ssl", P + "SASL_MECHANISM": "scram-sha-512",
                                    P + "SASL_USERNAME": "svc", P + "SASL_PASSWORD": "s3cret",
                                    P + "SSL_CAFILE": str(pem)})
    options = security.client_options()
    assert {k: v for k, v in options.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "svc",
        "sasl_plain_password": "s3cret"}
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert "s3cret" not in repr(security)  # never in a log line
    credentials = security.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials) and credentials.ssl_context is not None


def test_sasl_plaintext_and_tls_alone():
    plain = KafkaSecurity.parse({P + "SECURITY_PROTOCOL": "SASL_PLAINTEXT", P + "SASL_MECHANISM": "PLAIN",
                                 P + "SASL_USERNAME": "u", P + "SASL_PASSWORD": "p"})
    assert "ssl_context" not in plain.client_options() and plain.client_options()["sasl_mechanism"] == "PLAIN"
    assert plain.faust_credentials().ssl_context is None
    tls = KafkaSecurity.parse({P + "SECURITY_PROTOCOL": "SSL"})  # the system's trusted CAs
    assert tls.client_options()["security_protocol"] == "SSL"
    assert isinstance(tls.faust_credentials(), faust.SSLCredentials)


@pytest.mark.parametrize("env, message", [
    ({P + "SECURITY_PROTOCOL": "TLS"}, "SECURITY_PROTOCOL must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
    ({P + "SECURITY_PROTOCOL": "SASL_SSL", P + "SASL_USERNAME": "u"},
     "needs RECALLSTACK_KAFKA_SASL_MECHANISM, RECALLSTACK_KAFKA_SASL_PASSWORD"),
    ({P + "SECURITY_PROTOCOL": "SASL_SSL", P + "SASL_MECHANISM": "GSSAPI", P + "SASL_USERNAME": "u",
      P + "SASL_PASSWORD": "p"}, "SASL_MECHANISM must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    ({P + "SASL_USERNAME": "u"}, "SASL_USERNAME set, but RECALLSTACK_KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
    ({P + "SECURITY_PROTOCOL": "SASL_PLAINTEXT", P + "SASL_MECHANISM": "PLAIN", P + "SASL_USERNAME": "u",
      P + "SASL_PASSWORD": "p", P + "SSL_CAFILE": "/etc/hostname"}, "SSL_CAFILE set, but"),
    ({P + "SECURITY_PROTOCOL": "SSL", P + "SSL_CAFILE": "/nowhere/ca.pem"}, "SSL_CAFILE: no such file: /nowhere"),
    ({P + "SECURITY_PROTOCOL": "SSL", P + "SSL_KEYFILE": "/etc/hostname"}, "SSL_KEYFILE needs"),
])
def test_what_does_not_fit_is_refused_with_the_variable_named(env, message):
    with pytest.raises(ValueError, match=message):
        KafkaSecurity.parse(env)


def test_the_cli_says_a_bad_setting_in_one_line_and_exits_2(capsys, monkeypatch, tmp_path):
    from cli.main import main

    monkeypatch.setenv("RECALLSTACK_HOME", str(tmp_path))
    monkeypatch.setenv(P + "SECURITY_PROTOCOL", "SASL_SSL")
    assert main(["infra", "status", "--json"]) == 2
    out, err = capsys.readouterr()
    assert '"code": "invalid_settings"' in out and "RECALLSTACK_KAFKA_SASL_MECHANISM" in err
    monkeypatch.delenv(P + "SECURITY_PROTOCOL")
    monkeypatch.setenv("RECALLSTACK_CONSISTENCY_WAIT_MS", "soon")
    assert main(["infra", "status"]) == 2
    assert "RECALLSTACK_CONSISTENCY_WAIT_MS must be a whole number, got 'soon'" in capsys.readouterr().err


def test_the_settings_parse_the_kafka_variables_and_the_entry_point_installs_them(monkeypatch, tmp_path):
    from adapters import kafka_security
    from settings import Settings

    monkeypatch.setenv("RECALLSTACK_HOME", str(tmp_path))
    monkeypatch.setenv(P + "SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv(P + "SASL_MECHANISM", "plain")
    monkeypatch.setenv(P + "SASL_USERNAME", "svc")
    monkeypatch.setenv(P + "SASL_PASSWORD", "pw")
    cfg = Settings.from_env()
    assert cfg.kafka_security == KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "svc", "pw")
    try:
        kafka_security.use(cfg.kafka_security)
        assert kafka_security.client_options()["sasl_plain_username"] == "svc"
    finally:
        kafka_security.use(KafkaSecurity())
