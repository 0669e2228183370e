"""Secure connections from the STREAMS_* settings: Kafka over TLS and/or SASL, ClickHouse over HTTPS.

One place builds the Kafka credentials, so the Faust worker, `streams feed`, the topic admin
client and any other producer connect the same way: Faust's own SASL/SSL credential objects for
the worker, and for plain aiokafka clients the options Faust itself derives from them
(credentials_to_aiokafka_auth). Passwords come from a setting or a file and are never logged.
"""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlparse, urlunparse

from streams.settings import Settings, SettingsError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _first_line(path: str, setting: str) -> str:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SettingsError(f"{setting}: cannot read {path}: {exc.strerror}") from exc
    if not lines or not lines[0].strip():
        raise SettingsError(f"{setting}: {path} is empty")
    return lines[0].strip()


def check_kafka_security(settings: Settings) -> None:
    """Refuse combinations that cannot connect (raised when the settings are loaded)."""
    protocol = settings.kafka_security_protocol
    if protocol not in PROTOCOLS:
        raise SettingsError(f"STREAMS_KAFKA_SECURITY_PROTOCOL={protocol!r}: one of {', '.join(PROTOCOLS)}")
    if protocol.startswith("SASL_"):
        if settings.kafka_sasl_mechanism not in MECHANISMS:
            raise SettingsError(
                f"STREAMS_KAFKA_SASL_MECHANISM={settings.kafka_sasl_mechanism!r}: one of {', '.join(MECHANISMS)}"
            )
        if not settings.kafka_sasl_username:
            raise SettingsError(f"{protocol} needs STREAMS_KAFKA_SASL_USERNAME")
        if bool(settings.kafka_sasl_password) == bool(settings.kafka_sasl_password_file):
            raise SettingsError(
                f"{protocol} needs one of STREAMS_KAFKA_SASL_PASSWORD and STREAMS_KAFKA_SASL_PASSWORD_FILE"
            )
    elif settings.kafka_sasl_username or settings.kafka_sasl_password or settings.kafka_sasl_password_file:
        raise SettingsError(f"SASL credentials are set but STREAMS_KAFKA_SECURITY_PROTOCOL is {protocol}")
    uses_tls = protocol in ("SSL", "SASL_SSL")
    tls_files = (settings.kafka_ssl_cafile, settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    if any(tls_files) and not uses_tls:
        raise SettingsError(f"STREAMS_KAFKA_SSL_* files are set but STREAMS_KAFKA_SECURITY_PROTOCOL is {protocol}")
    if bool(settings.kafka_ssl_certfile) != bool(settings.kafka_ssl_keyfile):
        raise SettingsError("STREAMS_KAFKA_SSL_CERTFILE and STREAMS_KAFKA_SSL_KEYFILE go together")


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL/SASL_SSL (hostname checked, certificate required), else None."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    from aiokafka.helpers import create_ssl_context

    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.kafka_ssl_cafile or None,
        certfile=settings.kafka_ssl_certfile or None,
        keyfile=settings.kafka_ssl_keyfile or None,
    )
    return context


def kafka_sasl_password(settings: Settings) -> str:
    if settings.kafka_sasl_password_file:
        return _first_line(settings.kafka_sasl_password_file, "STREAMS_KAFKA_SASL_PASSWORD_FILE")
    return settings.kafka_sasl_password


def faust_credentials(settings: Settings) -> Any:
    """faust.App(broker_credentials=...): None for PLAINTEXT."""
    import faust

    protocol = settings.kafka_security_protocol
    context = kafka_ssl_context(settings)
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    credentials = faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=kafka_sasl_password(settings),
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )
    return credentials


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer / AIOKafkaConsumer / AIOKafkaAdminClient.

    Built without importing faust: `import faust` reads `--loop` from sys.argv to pick an event
    loop, which breaks `streams feed --loop FILE` (the same options faust's own
    credentials_to_aiokafka_auth gives; a unit test compares them).
    """
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers, "security_protocol": protocol}
    context = kafka_ssl_context(settings)
    if context is not None or protocol.startswith("SASL_"):
        options["ssl_context"] = context
    if protocol.startswith("SASL_"):
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=kafka_sasl_password(settings),
        )
    return options


def with_clickhouse_security(settings: Settings) -> Settings:
    """Fold STREAMS_CLICKHOUSE_CA_FILE and _PASSWORD_FILE into the DSN clickhouse-connect reads."""
    if not settings.clickhouse_ca_file and not settings.clickhouse_password_file:
        return settings
    parsed = urlparse(settings.clickhouse_dsn)
    if parsed.scheme not in ("http", "https"):
        raise SettingsError("STREAMS_CLICKHOUSE_CA_FILE / _PASSWORD_FILE need an http(s):// STREAMS_CLICKHOUSE_DSN")
    netloc = parsed.netloc
    if settings.clickhouse_password_file:
        if parsed.password:
            raise SettingsError("the ClickHouse password is in the DSN and in STREAMS_CLICKHOUSE_PASSWORD_FILE")
        password = _first_line(settings.clickhouse_password_file, "STREAMS_CLICKHOUSE_PASSWORD_FILE")
        host = netloc.rpartition("@")[2]
        user = parsed.username or "default"
        netloc = f"{user}:{quote(password, safe='')}@{host}"
    query = parse_qsl(parsed.query)
    if settings.clickhouse_ca_file:
        if parsed.scheme != "https":
            raise SettingsError("STREAMS_CLICKHOUSE_CA_FILE verifies TLS: use an https:// STREAMS_CLICKHOUSE_DSN")
        if not Path(settings.clickhouse_ca_file).is_file():
            raise SettingsError(f"STREAMS_CLICKHOUSE_CA_FILE: {settings.clickhouse_ca_file} is not a file")
        query = [(k, v) for k, v in query if k not in ("ca_cert", "verify")]
        query += [("ca_cert", settings.clickhouse_ca_file), ("verify", "true")]
    dsn = urlunparse(parsed._replace(netloc=netloc, query=urlencode(query)))
    return dataclasses.replace(settings, clickhouse_dsn=dsn)
