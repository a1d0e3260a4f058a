"""TLS on the uplink: verified by default, a private CA, mutual TLS, files named when wrong."""

from __future__ import annotations

import logging
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from buffer import AsyncStore
from cloud_sync.http.uploader import trust_for
from cloud_sync.tls import client_tls
from domain.errors import TlsSetupError
from receiver import Receiver
from tests.fixtures.pki import Pki, make_pki, server_context
from tests.fixtures.uplink import TOKEN, fill, uploader

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A private CA, a server certificate for 127.0.0.1 and a client certificate."""
    return make_pki(tmp_path_factory.mktemp("pki"))


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
    from config.loader import load_config
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

    from tests.fixtures.batches import batch, gzipped, key

    (tmp_path / "token").write_text(TOKEN)
    command = [
        sys.executable, "-m", "agent", "receiver", "--port", "0",
        "--db", str(tmp_path / "c.db"), "--token-file", str(tmp_path / "token"),
        "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
        "--tls-client-ca", str(pki.ca),
    ]  # fmt: skip
    root = Path(__file__).parents[3]  # the repository: `python -m agent` from there
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


def test_a_plain_http_platform_gets_a_context_that_trusts_nothing() -> None:
    """http:// never does TLS: no default trust store is loaded for it, yet verification
    stays on, so a request that went out over TLS anyway could only fail."""
    plain = trust_for("http://127.0.0.1:8080/api/v1/batches", True)
    assert isinstance(plain, ssl.SSLContext)
    assert plain.cert_store_stats()["x509_ca"] == 0
    assert plain.verify_mode == ssl.CERT_REQUIRED and plain.check_hostname
    assert trust_for("https://127.0.0.1:8443/api/v1/batches", True) is True
    private = ssl.create_default_context()
    assert trust_for("http://127.0.0.1:8080/", private) is private


async def test_a_plain_http_platform_still_receives(store: AsyncStore, tmp_path: Path) -> None:
    await fill(store, 2)
    with Receiver(tmp_path / "c.db", TOKEN) as receiver:
        assert receiver.url.startswith("http://")
        up = uploader(store, receiver.url + "/api/v1/batches")
        assert await up.deliver() == 2
        await up.close()


def test_the_daemon_does_not_import_the_httpx_command_line() -> None:
    """httpx/_main.py pulls pygments and click in (1.0 MiB of RSS) for a CLI never run."""
    probe = (
        "import sys, agent.daemon, cloud_sync.http.uploader;"
        "print(sys.modules['httpx._main'], 'pygments' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "False"]
