"""The agent's OPC UA identity: its application certificate and the user's password.

A secure channel needs a certificate. When the configuration names none, the
agent makes a self-signed one on first start, keeps it in `certificate_dir`
and reuses it afterwards: the server's administrator trusts that certificate
once, so it must not change under them. It is regenerated only when it is
missing, unreadable or expired, and that is said at WARNING, because the
server will have to trust the new one.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import socket
from pathlib import Path

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID

from config.base import ENV_VAR

__all__ = [
    "application_uri",
    "certificate_uri",
    "expand",
    "own_certificate",
    "read_certificate",
    "read_key",
    "read_password",
]

log = logging.getLogger(__name__)

VALID_DAYS = 3650  # an unattended gateway must not stop on a certificate that lapsed in a year


def application_uri(host: str | None = None, name: str = "edge-agent") -> str:
    """The URI the agent's certificate names and the client announces; servers compare them."""
    return f"urn:{host or socket.gethostname()}:{name}"


def expand(path: str) -> str:
    """`${VAR}` and `${VAR:-default}` in a path, as the loader expands them (which it does
    not for `certificate_dir`); an unset VAR stays as written."""

    def one(match: re.Match[str]) -> str:
        name, default = match.groups()
        if default is not None and not os.environ.get(name):
            return default
        return os.environ.get(name, match.group())

    return ENV_VAR.sub(one, path)


def own_certificate(
    directory: Path,
    *,
    uri: str,
    host: str | None = None,
    server: bool = False,
    stem: str = "edge-agent",
) -> tuple[Path, Path]:
    """(certificate, private key) in `directory` (`<stem>.der`, `<stem>.pem`): reused when
    usable, else generated.

    Blocking (key generation, files): call it through `asyncio.to_thread`.
    """
    cert_path, key_path = directory / f"{stem}.der", directory / f"{stem}.pem"
    problem = _unusable(cert_path, key_path)
    if problem is None:
        return cert_path, key_path
    if cert_path.exists() or key_path.exists():
        log.warning(
            "%s: %s; generating a new one: the server must trust it again", cert_path, problem
        )
    host = host or socket.gethostname()
    key = cert_gen.generate_private_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        uri,
        {"organizationName": "edge-agent"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName(host)],
        extended=[usage],
        days=VALID_DAYS,
    )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(key_path, cert_gen.dump_private_key_as_pem(key), mode=0o600)
    _write(cert_path, cert.public_bytes(Encoding.DER), mode=0o644)
    log.info("%s: generated the agent's OPC UA certificate (%s)", cert_path, uri)
    return cert_path, key_path


def read_certificate(path: str | Path) -> x509.Certificate:
    """A certificate file, PEM or DER whatever its name says."""
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def read_key(path: str | Path) -> tuple[bytes, str]:
    """A private key file's bytes and format ("pem" or "der"), whatever its name says."""
    data = Path(path).read_bytes()
    return data, "pem" if data.lstrip().startswith(b"-----BEGIN") else "der"


def certificate_uri(cert: x509.Certificate) -> str | None:
    """The application URI a certificate names (its subjectAltName URI), if any."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def read_password(path: str | Path) -> str:
    """The password in a file (a systemd credential), without its trailing newline."""
    return Path(path).read_text(encoding="utf-8").rstrip("\r\n")


def _unusable(cert_path: Path, key_path: Path) -> str | None:
    """Why the stored pair cannot be used, or None when it can."""
    if not cert_path.is_file() or not key_path.is_file():
        return "no certificate and key yet"
    try:
        cert = x509.load_der_x509_certificate(cert_path.read_bytes())
        key = load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        return f"unreadable ({exc})"
    if cert.public_key() != key.public_key():  # a crash between writing the two files
        return "the certificate does not belong to the key"
    if cert.not_valid_after_utc <= datetime.datetime.now(datetime.UTC):
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def _write(path: Path, data: bytes, *, mode: int) -> None:
    """Write whole or not at all: a power cut must not leave half a key."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
