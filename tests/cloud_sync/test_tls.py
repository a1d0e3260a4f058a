"""TLS on the uplink: verified by default, a private CA, mutual TLS, files named when wrong."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from buffer import AsyncStore
from cloud_sync.http.tls import client_tls
from domain.errors import TlsSetupError
from receiver import Receiver
from tests.cloud_sync.test_uploader import TOKEN, fill, uploader

pytestmark = pytest.mark.timeout(60)


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    ip: str | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Path:
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A private CA, a server certificate for 127.0.0.1 and a client certificate."""
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("edge-agent test CA", ca_key, None, ca=True)
    issuer = (ca.subject, ca_key)
    server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    _write(d / "ca.pem", ca, ca_key)
    _write(d / "server.pem", _issue("central", server_key, issuer, ip="127.0.0.1"), server_key)
    _write(d / "client.pem", _issue("cd-plant07-gw1", client_key, issuer), client_key)
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key")


def server_context(pki: Pki, *, mutual: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    if mutual:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
    return context


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    s = AsyncStore(tmp_path / "buffer.db")
    yield s
    s.close()


async def test_a_private_ca_verifies_the_platform(
    store: AsyncStore, pki: Pki, tmp_path: Path
) -> None:
    """sync.ca_file: the platform's certificate is checked against it and the batch goes."""
    await fill(store, 3)
    with Receiver(tmp_path / "c.db", TOKEN, tls=server_context(pki)) as receiver:
        up = uploader(store, receiver.url + "/api/v1/batches", verify=client_tls(str(pki.ca)))
        assert await up.deliver() == 3
        await up.close()
    assert receiver.url.startswith("https://127.0.0.1:")


async def test_verification_is_on_by_default(
    store: AsyncStore, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without ca_file an unknown CA is refused: nothing sent, the batch stays, it is said."""
    await fill(store, 3)
    with Receiver(tmp_path / "c.db", TOKEN, tls=server_context(pki)) as receiver:
        up = uploader(store, receiver.url + "/api/v1/batches", attempts=1)
        with caplog.at_level(logging.WARNING):
            assert await up.deliver() == 0
        await up.close()
    assert "CERTIFICATE_VERIFY_FAILED" in up.status.last_result
    assert (await store.backlog())["intervals"] == 3
    assert TOKEN not in caplog.text


async def test_mutual_tls_needs_the_client_certificate(
    store: AsyncStore, pki: Pki, tmp_path: Path
) -> None:
    """A platform that requires a client certificate takes the batch only with one."""
    await fill(store, 3)
    with Receiver(tmp_path / "c.db", TOKEN, tls=server_context(pki, mutual=True)) as receiver:
        url = receiver.url + "/api/v1/batches"
        without = uploader(store, url, attempts=1, verify=client_tls(str(pki.ca)))
        assert await without.deliver() == 0
        await without.close()
        assert (await store.backlog())["intervals"] == 3
        verify = client_tls(str(pki.ca), str(pki.client_cert), str(pki.client_key))
        up = uploader(store, url, verify=verify)
        assert await up.deliver() == 3
        await up.close()


def test_tls_files_that_cannot_be_used_name_their_field(pki: Pki, tmp_path: Path) -> None:
    """A missing CA file, a key that does not match, a key alone: each names sync.<field>."""
    with pytest.raises(TlsSetupError, match="No such file") as missing:
        client_tls(str(tmp_path / "nope.pem"))
    assert missing.value.field == "ca_file"
    with pytest.raises(TlsSetupError) as mismatch:
        client_tls(None, str(pki.client_cert), str(pki.server_key))
    assert mismatch.value.field in ("client_cert", "client_key")
    with pytest.raises(TlsSetupError) as alone:
        client_tls(None, None, str(pki.client_key))
    assert alone.value.field == "client_key"
    assert client_tls() is True


async def test_the_daemon_refuses_a_ca_file_it_cannot_read_naming_the_field(
    tmp_path: Path,
) -> None:
    """sync.ca_file pointing nowhere: the agent does not start and the error has its line."""
    from agent.daemon import Agent
    from agent.demo import demo_config
    from config import load_config
    from domain.errors import ConfigInvalid

    (tmp_path / "sync-token").write_text(TOKEN)
    text = demo_config(5020, "https://127.0.0.1:9", tmp_path)
    config = tmp_path / "agent.yaml"
    config.write_text(text.replace("sync:\n", f"sync:\n  ca_file: {tmp_path / 'ca.pem'}\n"))
    agent = Agent(load_config(config, require_env=True))
    with pytest.raises(ConfigInvalid) as error:
        await agent.start()
    [problem] = error.value.problems
    assert "sync.ca_file" in str(problem) and "No such file" in str(problem)
    assert not (tmp_path / "buffer.db").exists()  # stopped before opening anything


def test_the_receiver_command_serves_mutual_tls(pki: Pki, tmp_path: Path) -> None:
    """`edge-agent receiver --tls-cert --tls-key --tls-client-ca`: HTTPS that takes a batch
    from a client with a certificate from that CA and refuses one without."""
    import subprocess
    import sys

    import httpx

    from tests.cloud_sync.batches import batch, gzipped, key

    (tmp_path / "token").write_text(TOKEN)
    command = [
        sys.executable, "-m", "agent", "receiver", "--port", "0",
        "--db", str(tmp_path / "c.db"), "--token-file", str(tmp_path / "token"),
        "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
        "--tls-client-ca", str(pki.ca),
    ]  # fmt: skip
    root = Path(__file__).parents[2]
    with subprocess.Popen(
        command, cwd=root, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip().removeprefix("receiver listening on ")
            document = batch()
            headers = {
                "Authorization": f"Bearer {TOKEN}",
                "Content-Encoding": "gzip",
                "Idempotency-Key": key(document),
            }
            post = f"{url}/api/v1/batches"
            with (
                httpx.Client(verify=client_tls(str(pki.ca))) as anonymous,
                pytest.raises((httpx.HTTPError, ssl.SSLError)),
            ):
                anonymous.post(post, content=gzipped(document), headers=headers)
            verify = client_tls(str(pki.ca), str(pki.client_cert), str(pki.client_key))
            with httpx.Client(verify=verify) as client:
                reply = client.post(post, content=gzipped(document), headers=headers)
            assert (url[:8], reply.json()["status"]) == ("https://", "stored")
        finally:
            process.terminate()
            process.wait(timeout=10)
