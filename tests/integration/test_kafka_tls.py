"""A real SASL_SSL listener: a broker of this test's own, with a certificate made by the test.

The broker (the same jars as deploy/kafka/kafka.sh) listens with TLS and SASL PLAIN, SCRAM-SHA-256
and SCRAM-SHA-512 on KAFKA_PORT + 50; the pipeline's own clients (topic admin, producer, consumer),
configured only through STREAMS_* settings, create a topic, produce and read back. A wrong
password and an untrusted CA must fail.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams import PROJECT_ROOT
from streams.kafka_admin import ensure_topics
from streams.kafka_security import aiokafka_options
from streams.settings import Settings, load_settings

pytestmark = pytest.mark.kafka
KAFKA = PROJECT_ROOT / "deploy" / "kafka"
JARS = KAFKA / "jars"
USER, PASSWORD = "streams", "streams-secret"
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d: Path, name: str) -> None:
    openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.pem")  # fmt: skip


def free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, Path]]:
    """(SASL_SSL port, the CA that signed the broker, another CA) for a broker that runs the module."""
    if not (JARS / ".complete").exists() or not shutil.which("java") or not shutil.which("openssl"):
        pytest.skip("needs the broker jars (make broker-start), java and openssl")
    port = int(os.environ.get("KAFKA_PORT", "9092")) + 50
    if not all(free(p) for p in (port, port + 1, port + 2)):
        pytest.skip(f"ports {port}-{port + 2} are taken")
    d = tmp_path_factory.mktemp("kafka-tls")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "broker.key",
            "-out", "broker.csr")  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(d, "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "broker.pem")  # fmt: skip
    openssl(d, "pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-out", "broker.p12",
            "-passout", "pass:keystore-pass", "-name", "broker")  # fmt: skip
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    plain = f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{PASSWORD}";'
    config = d / "server.properties"
    config.write_text(
        f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{port + 1}
listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1},INTERNAL://127.0.0.1:{port + 2}
advertised.listeners=SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{port + 2}
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL
log.dirs={d / "data"}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
ssl.keystore.type=PKCS12
ssl.keystore.location={d / "broker.p12"}
ssl.keystore.password=keystore-pass
sasl.enabled.mechanisms={",".join(MECHANISMS)}
listener.name.sasl_ssl.plain.sasl.jaas.config={plain}
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={scram}
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram}
"""
    )
    java = ["java", f"-Dlog4j.configuration=file:{KAFKA / 'log4j.properties'}", "-cp", f"{JARS}/*"]
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    users = [f"{m}=[name={USER},password={PASSWORD}]" for m in MECHANISMS if m.startswith("SCRAM")]
    subprocess.run(
        [*java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)]
        + [arg for user in users for arg in ("--add-scram", user)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    log = d / "broker.log"
    with log.open("w") as out:
        broker = subprocess.Popen(
            [*java[:1], "-Xmx384m", *java[1:], "kafka.Kafka", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while "Kafka Server started" not in log.read_text():
            assert broker.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the TLS broker did not start in 120 s"
            time.sleep(0.5)
        yield port, d / "ca.pem", d / "other-ca.pem"
    finally:
        broker.send_signal(signal.SIGTERM)
        try:
            broker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()


def secured(port: int, mechanism: str, ca: Path, password: str = PASSWORD) -> Settings:
    return load_settings(
        {
            "STREAMS_BROKER": f"127.0.0.1:{port}",
            "STREAMS_TOPIC_PREFIX": f"tls-{mechanism.lower()}-",
            "STREAMS_PARTITIONS": "1",
            "STREAMS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "STREAMS_KAFKA_SASL_MECHANISM": mechanism,
            "STREAMS_KAFKA_SASL_USERNAME": USER,
            "STREAMS_KAFKA_SASL_PASSWORD": password,
            "STREAMS_KAFKA_SSL_CAFILE": str(ca),
        }
    )


async def round_trip(settings: Settings) -> list[bytes]:
    topic = settings.topic("probe")
    assert await ensure_topics(settings, ["probe"]) == [topic]
    producer = AIOKafkaProducer(**aiokafka_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"over TLS and SASL")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, **aiokafka_options(settings), group_id=f"{topic}-reader", auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=15000)
    finally:
        await consumer.stop()
    return [m.value for messages in batches.values() for m in messages if m.value is not None]


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_the_pipeline_clients_talk_to_a_sasl_ssl_broker(
    tls_broker: tuple[int, Path, Path], mechanism: str
) -> None:
    port, ca, _ = tls_broker
    assert await asyncio.wait_for(round_trip(secured(port, mechanism, ca)), timeout=90) == [b"over TLS and SASL"]


async def test_a_wrong_password_is_refused(tls_broker: tuple[int, Path, Path]) -> None:
    port, ca, _ = tls_broker
    producer = AIOKafkaProducer(**aiokafka_options(secured(port, "SCRAM-SHA-512", ca, password="wrong")))
    with pytest.raises(KafkaError):
        await asyncio.wait_for(producer.start(), timeout=60)
    await producer.stop()


async def test_a_broker_certificate_from_an_untrusted_ca_is_refused(tls_broker: tuple[int, Path, Path]) -> None:
    port, _, other_ca = tls_broker
    producer = AIOKafkaProducer(**aiokafka_options(secured(port, "PLAIN", other_ca)))
    with pytest.raises(KafkaError):
        await asyncio.wait_for(producer.start(), timeout=60)
    await producer.stop()
