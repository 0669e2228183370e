"""Kafka TLS/SASL and ClickHouse HTTPS settings reach the clients that connect, and stay secret."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from streams import PROJECT_ROOT
from streams.kafka_security import aiokafka_options, faust_credentials
from streams.settings import SettingsError, display_value, load_settings

SECRET = "s3cr3t-Passw0rd"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed CA and a client certificate signed by it, made with openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=streams-test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=streams-client", "-keyout", "client.key",
        "-out", "client.csr")  # fmt: skip
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", "client.pem")  # fmt: skip
    (d / "password").write_text(SECRET + "\n")
    return {"ca": d / "ca.pem", "cert": d / "client.pem", "key": d / "client.key", "password": d / "password"}


def test_plaintext_is_the_default() -> None:
    settings = load_settings({"STREAMS_BROKER": "a:9092,b:9092"})
    assert faust_credentials(settings) is None
    assert aiokafka_options(settings) == {"bootstrap_servers": ["a:9092", "b:9092"], "security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_gets_mechanism_password_file_and_a_verifying_tls_context(
    mechanism: str, tls_files: dict[str, Path]
) -> None:
    settings = load_settings(
        {
            "STREAMS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "STREAMS_KAFKA_SASL_MECHANISM": mechanism,
            "STREAMS_KAFKA_SASL_USERNAME": "streams",
            "STREAMS_KAFKA_SASL_PASSWORD_FILE": str(tls_files["password"]),
            "STREAMS_KAFKA_SSL_CAFILE": str(tls_files["ca"]),
        }
    )
    options = aiokafka_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == mechanism
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("streams", SECRET)
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any(("commonName", "streams-test-ca") in rdn for c in context.get_ca_certs() for rdn in c["subject"])


def test_sasl_plaintext_has_no_tls_and_ssl_can_present_a_client_certificate(tls_files: dict[str, Path]) -> None:
    sasl = aiokafka_options(
        load_settings(
            {
                "STREAMS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "STREAMS_KAFKA_SASL_USERNAME": "u",
                "STREAMS_KAFKA_SASL_PASSWORD": SECRET,
            }
        )
    )
    assert sasl["security_protocol"] == "SASL_PLAINTEXT" and sasl["ssl_context"] is None
    assert sasl["sasl_mechanism"] == "PLAIN"
    mtls = aiokafka_options(
        load_settings(
            {
                "STREAMS_KAFKA_SECURITY_PROTOCOL": "SSL",
                "STREAMS_KAFKA_SSL_CAFILE": str(tls_files["ca"]),
                "STREAMS_KAFKA_SSL_CERTFILE": str(tls_files["cert"]),
                "STREAMS_KAFKA_SSL_KEYFILE": str(tls_files["key"]),
            }
        )
    )
    assert mtls["security_protocol"] == "SSL" and isinstance(mtls["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in mtls


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STREAMS_KAFKA_SECURITY_PROTOCOL": "TLS"}, "one of"),
        ({"STREAMS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "STREAMS_KAFKA_SASL_PASSWORD": "x"}, "USERNAME"),
        (
            {"STREAMS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "STREAMS_KAFKA_SASL_USERNAME": "u"},
            "PASSWORD",
        ),
        (
            {
                "STREAMS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "STREAMS_KAFKA_SASL_USERNAME": "u",
                "STREAMS_KAFKA_SASL_PASSWORD": "x",
                "STREAMS_KAFKA_SASL_MECHANISM": "GSSAPI",
            },
            "MECHANISM",
        ),
        ({"STREAMS_KAFKA_SASL_USERNAME": "u"}, "PLAINTEXT"),
        ({"STREAMS_KAFKA_SSL_CAFILE": "/x.pem"}, "PLAINTEXT"),
        ({"STREAMS_KAFKA_SECURITY_PROTOCOL": "SSL", "STREAMS_KAFKA_SSL_CERTFILE": "/c.pem"}, "together"),
        ({"STREAMS_CLICKHOUSE_CA_FILE": "/ca.pem"}, "http"),
        ({"STREAMS_CLICKHOUSE_DSN": "http://h:8123/db", "STREAMS_CLICKHOUSE_CA_FILE": "/ca.pem"}, "https"),
    ],
)
def test_unusable_combinations_fail_when_loaded(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


async def test_the_feed_producer_gets_the_same_options(tls_files: dict[str, Path]) -> None:
    settings = load_settings(
        {
            "STREAMS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "STREAMS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "STREAMS_KAFKA_SASL_USERNAME": "streams",
            "STREAMS_KAFKA_SASL_PASSWORD": SECRET,
            "STREAMS_KAFKA_SSL_CAFILE": str(tls_files["ca"]),
        }
    )
    producer = AIOKafkaProducer(**aiokafka_options(settings), acks="all", enable_idempotence=True)
    client = producer.client
    assert client._security_protocol == "SASL_SSL" and client._sasl_mechanism == "SCRAM-SHA-256"
    assert client._sasl_plain_username == "streams" and client._sasl_plain_password == SECRET
    assert isinstance(client._ssl_context, ssl.SSLContext)
    await producer.stop()


def test_the_faust_app_connects_with_the_credentials(tls_files: dict[str, Path]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMS_")}
    env.update(
        {
            "STREAMS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "STREAMS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "STREAMS_KAFKA_SASL_USERNAME": "worker",
            "STREAMS_KAFKA_SASL_PASSWORD_FILE": str(tls_files["password"]),
            "STREAMS_KAFKA_SSL_CAFILE": str(tls_files["ca"]),
        }
    )
    probe = (
        "import json; from streams.app import app; "
        "from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth as auth; "
        "o = dict(auth(app.conf.broker_credentials)); o['ssl_context'] = type(o['ssl_context']).__name__; "
        "print(json.dumps(o))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "worker",
        "sasl_plain_password": SECRET,
        "ssl_context": "SSLContext",
    }


def test_clickhouse_https_gets_the_ca_bundle_and_the_password_file(tls_files: dict[str, Path]) -> None:
    from clickhouse_connect.driver import _parse_connection_params

    settings = load_settings(
        {
            "STREAMS_CLICKHOUSE_DSN": "https://streams@ch.example.internal:8443/streams",
            "STREAMS_CLICKHOUSE_CA_FILE": str(tls_files["ca"]),
            "STREAMS_CLICKHOUSE_PASSWORD_FILE": str(tls_files["password"]),
        }
    )
    kwargs: dict[str, object] = {}
    host, user, password, port, database, interface = _parse_connection_params(
        None, None, "", None, None, None, False, settings.clickhouse_dsn, kwargs
    )
    assert (host, user, password, port, database) == ("ch.example.internal", "streams", SECRET, 8443, "streams")
    assert interface == "https"
    assert kwargs == {"ca_cert": str(tls_files["ca"]), "verify": "true"}


def test_secrets_are_never_shown(tls_files: dict[str, Path]) -> None:
    env = {
        "STREAMS_CLICKHOUSE_DSN": "https://streams@ch:8443/streams",
        "STREAMS_CLICKHOUSE_PASSWORD_FILE": str(tls_files["password"]),
        "STREAMS_API_TOKEN": "tok-" + SECRET,
        "STREAMS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "STREAMS_KAFKA_SASL_USERNAME": "u",
        "STREAMS_KAFKA_SASL_PASSWORD": SECRET,
    }
    settings = load_settings(env)
    assert SECRET not in repr(settings)
    assert display_value(settings, "kafka_sasl_password") == "***"
    assert display_value(settings, "clickhouse_dsn") == "https://streams:***@ch:8443/streams"
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMS_")} | env
    out = subprocess.run(
        [sys.executable, "-m", "streams.cli", "settings"],
        env=process_env | {"COLUMNS": "250"},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "STREAMS_KAFKA_SASL_PASSWORD" in out.stdout and SECRET not in out.stdout + out.stderr


def test_aiokafka_options_do_not_import_faust() -> None:
    """`import faust` takes `--loop X` from sys.argv as an event loop: `streams feed --loop` must not load it."""
    code = (
        "import sys; sys.argv = ['streams', 'feed', '--loop', 'x.json']\n"
        "from streams.kafka_security import aiokafka_options\n"
        "from streams.settings import load_settings\n"
        "aiokafka_options(load_settings({}))\n"
        "import streams.feed, streams.feedrun\n"
        "assert 'faust' not in sys.modules, 'faust imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
