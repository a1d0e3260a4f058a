"""Basic256Sha256 Sign and SignAndEncrypt, the agent's own certificate, user and password.

The meter here offers only the two Basic256Sha256 endpoints and only logins
by user name, as a plant's server would; certificates live in tmp dirs.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from domain.reading import Quality, Reading
from drivers.opcua import security
from drivers.opcua.driver import OpcUaDriver
from drivers.opcua.simulator import LoadCurve, MeterServer
from tests.fixtures.opcua import all_good, device

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(30)]

SIGN, ENCRYPT = "Basic256Sha256/Sign", "Basic256Sha256/SignAndEncrypt"
PASSWORD = "s3cret-Pa55"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def meter(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MeterServer]:
    sim = MeterServer(
        LoadCurve(base_kw=36.0, swing_kw=0.0),
        security=(SIGN, ENCRYPT),
        certificate_dir=tmp_path_factory.mktemp("server-pki"),
        users={"operator": PASSWORD},
    )
    await sim.start()
    yield sim
    await sim.close()


@pytest.fixture
def password_file(tmp_path: Path) -> str:
    path = tmp_path / "opcua-password"
    path.write_text(PASSWORD + "\n")
    return str(path)


async def read_once(meter: MeterServer, **opcua: object) -> list[Reading]:
    driver = OpcUaDriver(device(meter.endpoint, timeout="2s", **opcua))
    try:
        return await driver.read()
    finally:
        await driver.close()


@pytest.mark.parametrize("mode", [SIGN, ENCRYPT])
async def test_the_agent_makes_its_own_certificate_and_connects(
    meter: MeterServer, tmp_path: Path, password_file: str, mode: str
) -> None:
    """No certificate configured: one is generated in certificate_dir and the session works."""
    pki = tmp_path / "pki"
    readings = await read_once(
        meter, security=mode, certificate_dir=str(pki), username="operator",
        password_file=password_file,
    )  # fmt: skip
    assert all_good(readings)
    assert sorted(p.name for p in pki.iterdir()) == ["edge-agent.der", "edge-agent.pem"]
    assert (pki / "edge-agent.pem").stat().st_mode & 0o077 == 0  # the key is the agent's alone


async def test_the_generated_certificate_is_reused(
    meter: MeterServer, tmp_path: Path, password_file: str
) -> None:
    """A second start finds the certificate the server's administrator trusted, unchanged."""
    pki = tmp_path / "pki"
    login = {"username": "operator", "password_file": password_file}
    assert all_good(await read_once(meter, security=SIGN, certificate_dir=str(pki), **login))
    first = (pki / "edge-agent.der").read_bytes()
    assert all_good(await read_once(meter, security=ENCRYPT, certificate_dir=str(pki), **login))
    assert (pki / "edge-agent.der").read_bytes() == first


async def test_configured_certificate_key_and_trusted_server_certificate(
    meter: MeterServer, tmp_path: Path, password_file: str
) -> None:
    """SignAndEncrypt with files given in the config and the server's certificate pinned."""
    cert, key = security.own_certificate(tmp_path, uri="urn:test:client", stem="client")
    readings = await read_once(
        meter, security=ENCRYPT, certificate=str(cert), private_key=str(key),
        server_certificate=str(meter.certificate), username="operator",
        password_file=password_file,
    )  # fmt: skip
    assert all_good(readings)


async def test_a_server_that_is_not_the_trusted_one_is_refused(
    meter: MeterServer, tmp_path: Path, password_file: str
) -> None:
    """server_certificate names another certificate: bad readings saying so."""
    other, _ = security.own_certificate(tmp_path, uri="urn:test:other", server=True, stem="other")
    readings = await read_once(
        meter, security=SIGN, certificate_dir=str(tmp_path / "pki"), server_certificate=str(other),
        username="operator", password_file=password_file,
    )  # fmt: skip
    assert {r.reason for r in readings} == {
        f"m1 {meter.endpoint}: the server's certificate is not the one in {other}"
    }


async def test_a_wrong_password_is_a_bad_reading_and_never_logged(
    meter: MeterServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server refuses the login: bad readings with the status, no crash, no password."""
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")
    caplog.set_level(logging.DEBUG)
    readings = await read_once(
        meter, security=ENCRYPT, certificate_dir=str(tmp_path / "pki"), username="operator",
        password_file=str(wrong),
    )  # fmt: skip
    assert {r.quality for r in readings} == {Quality.BAD}
    assert {r.reason for r in readings} == {
        f"m1 {meter.endpoint}: login refused as operator: "
        "BadUserAccessDenied (access denied for this user)"
    }
    assert "not-the-password" not in caplog.text and PASSWORD not in caplog.text


async def test_an_unreadable_password_file_is_named(meter: MeterServer, tmp_path: Path) -> None:
    """A missing credential file: the reason names the file, not its content."""
    missing = tmp_path / "nowhere"
    readings = await read_once(
        meter, security=SIGN, certificate_dir=str(tmp_path / "pki"), username="operator",
        password_file=str(missing),
    )  # fmt: skip
    assert {r.reason for r in readings} == {
        f"m1 {meter.endpoint}: cannot read password_file {missing}: No such file or directory"
    }


async def test_a_security_the_server_does_not_offer_lists_what_it_offers(
    meter: MeterServer,
) -> None:
    """security: None against a server with only signed endpoints."""
    readings = await read_once(meter)
    assert {r.reason for r in readings} == {
        f"m1 {meter.endpoint}: the server offers no None endpoint (it offers: {SIGN}, {ENCRYPT})"
    }


async def test_pem_files_work_whatever_their_names(
    meter: MeterServer, tmp_path: Path, password_file: str
) -> None:
    """client.crt and client.key in PEM are recognised by their content, not their suffix."""
    der, pem_key = security.own_certificate(tmp_path, uri="urn:test:client", stem="client")
    cert = x509.load_der_x509_certificate(der.read_bytes())
    (tmp_path / "client.crt").write_bytes(cert.public_bytes(Encoding.PEM))
    (tmp_path / "client.key").write_bytes(pem_key.read_bytes())
    readings = await read_once(
        meter, security=SIGN, certificate=str(tmp_path / "client.crt"),
        private_key=str(tmp_path / "client.key"), username="operator", password_file=password_file,
    )  # fmt: skip
    assert all_good(readings)


async def test_a_missing_certificate_file_is_named(meter: MeterServer, tmp_path: Path) -> None:
    """The reason names the field and the file."""
    missing = tmp_path / "client.der"
    readings = await read_once(
        meter, security=SIGN, certificate=str(missing), private_key=str(tmp_path / "client.pem"),
        username="operator",
    )  # fmt: skip
    assert {r.reason for r in readings} == {
        f"m1 {meter.endpoint}: cannot load certificate {missing}: No such file or directory"
    }


async def test_an_expired_own_certificate_is_replaced_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The server must trust the new one: the agent says so at WARNING."""
    monkeypatch.setattr(security, "VALID_DAYS", 0)  # valid until the moment it is made
    cert, _ = security.own_certificate(tmp_path, uri="urn:test:agent")
    first = cert.read_bytes()
    monkeypatch.setattr(security, "VALID_DAYS", 3650)
    security.own_certificate(tmp_path, uri="urn:test:agent")
    assert cert.read_bytes() != first
    assert any(r.levelno == logging.WARNING and "expired" in r.getMessage() for r in caplog.records)
