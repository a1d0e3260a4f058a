"""TLS for the uplink: verification always on, a private CA, a client certificate.

There is deliberately no way to turn verification off: a gateway that would
send a plant's energy data and its token to whoever answers on the address is
worse than one that waits until someone installs the right CA file.
"""

from __future__ import annotations

import ssl

from domain.errors import TlsSetupError


def client_tls(
    ca_file: str | None = None, client_cert: str | None = None, client_key: str | None = None
) -> ssl.SSLContext | bool:
    """What httpx's `verify=` needs: True (the default trust store) or a context."""
    if client_key and not client_cert:
        raise TlsSetupError("client_key", "client_key needs client_cert (the certificate)")
    if not (ca_file or client_cert):
        return True
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError("ca_file", f"cannot load the CA file {ca_file}: {_why(exc)}") from exc
    if client_cert:
        try:
            context.load_cert_chain(client_cert, client_key)
        except (OSError, ssl.SSLError) as exc:
            field = "client_key" if client_key and "key" in str(exc).lower() else "client_cert"
            raise TlsSetupError(
                field,
                f"cannot load the client certificate {client_cert}"
                f"{f' with key {client_key}' if client_key else ''}: {_why(exc)}"
                " (PEM files, the key unencrypted, matching the certificate)",
            ) from exc
    return context


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, ssl.SSLError):
        return exc.strerror
    return str(exc)
