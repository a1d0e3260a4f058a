"""The one seam between the driver and asyncua: opening a session, calling it, closing it.

Every asyncua exception is translated here into domain.errors (`raise ... from
exc`), a node id that does not parse included; nothing above this module sees
one. A status that means the session or
the link is gone is `Disconnected` (reconnect); a refusal the server will
repeat (a bad password, an untrusted certificate) is a `PermanentError`.

asyncua logs at WARNING what this module translates and the driver reports
once per transition (service faults, closing a session whose socket is gone);
`_Hush` drops exactly those records so the journal says each thing once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from asyncua import Client, ua
from asyncua.crypto import security_policies, uacrypto

from domain.errors import (
    BadReply,
    DecodeError,
    DeviceRejected,
    DeviceTimeout,
    Disconnected,
    EdgeAgentError,
    PermanentError,
)
from drivers.opcua import security
from drivers.opcua.codec import explain
from drivers.opcua.settings import OpcUa

T = TypeVar("T")
R = TypeVar("R")

SESSION_TIMEOUT_MS = 120_000  # short: a session the agent abandoned is freed within minutes
PROBE_EVERY = 60.0  # asyncua's own health probe; our reads and watch do the real checking
CONNECT_STEPS = 4  # a connect is several requests: its budget is this many timeouts

# Statuses meaning "this session or channel is gone": reconnect, do not blame the node.
_LOST = {
    "BadSessionIdInvalid",
    "BadSessionClosed",
    "BadSessionNotActivated",
    "BadSecureChannelIdInvalid",
    "BadSecureChannelClosed",
    "BadSecureChannelTokenUnknown",
    "BadConnectionClosed",
    "BadServerHalted",
    "BadShutdown",
    "BadServerNotConnected",
    "BadCommunicationError",
    "BadTcpInternalError",
    "BadTimeout",
    "BadRequestTimeout",
    "BadTooManySessions",
    "BadMaxConnectionsReached",
}
_LOGIN_REFUSED = {
    "BadUserAccessDenied",
    "BadIdentityTokenInvalid",
    "BadIdentityTokenRejected",
}
_MODES = {
    "None": ua.MessageSecurityMode.None_,
    "Basic256Sha256/Sign": ua.MessageSecurityMode.Sign,
    "Basic256Sha256/SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}


def connect_budget(timeout: float) -> float:
    """The longest `open_client` can take: the endpoints, then the session, each its budget."""
    return 2 * CONNECT_STEPS * timeout


class _Hush(logging.Filter):
    """Drop asyncua's records about what the driver translates and reports itself,
    and its dump of the login request, which holds the password in clear."""

    PREFIXES = (
        "ServiceFault (",  # a refused request: translated, and reported once by the driver
        "close_session was called but connection is closed",  # closing a lost link
        "close_session but connection wasn't established",
        "close_secure_channel was called but connection is closed",
        "delete_subscriptions failed for",  # deleting a subscription the server forgot
        "Received data for unknown subscription",  # a publish racing a re-created subscription
    )

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        if args and isinstance(args[0], ua.ActivateSessionRequest):
            return False  # asyncua's DEBUG dump of the login request shows the password
        if record.msg.startswith("Publish iteration crashed") and record.exc_info:
            return not isinstance(record.exc_info[1], ConnectionError | OSError)  # link lost
        return not record.msg.startswith(self.PREFIXES)


for _name in (
    "asyncua.client.ua_client.UASocketProtocol",
    "asyncua.client.ua_client.UaClient",
    "asyncua.client.ua_session.UaSession",
):
    logging.getLogger(_name).addFilter(_Hush())


def translate(exc: BaseException, where: str, timeout: float) -> EdgeAgentError:
    """The agent error for an exception out of asyncua (or the socket under it)."""
    if isinstance(exc, EdgeAgentError):
        return exc
    if isinstance(exc, TimeoutError):
        return DeviceTimeout(f"{where}: no answer within {timeout:g}s")
    if isinstance(exc, ua.UaStatusCodeError):
        status = ua.StatusCode(exc.code)
        if status.name in _LOST:
            return Disconnected(f"{where}: {explain(status)}")
        return DeviceRejected(f"{where}: {explain(status)}", exc.code)
    if isinstance(exc, ConnectionRefusedError):
        return Disconnected(f"{where}: connection refused")
    if isinstance(exc, ConnectionError | OSError):  # asyncua's own say "client is disconnected"
        return Disconnected(f"{where}: {exc.strerror or 'connection lost'}")
    if isinstance(exc, ua.UaError) and "certificate mismatch" in str(exc):
        return PermanentError(f"{where}: the server's certificate is not server_certificate")
    return BadReply(f"{where}: {type(exc).__name__}: {exc}")


def parse_node(text: str) -> ua.NodeId:
    """The NodeId written in the configuration, or DecodeError saying it is not one."""
    try:
        return ua.NodeId.from_string(text)
    except (ua.UaStringParsingError, ValueError) as exc:
        raise DecodeError(
            "not a valid node id (write it like ns=2;s=Meter.Energy or ns=3;i=1001)"
        ) from exc


async def call(where: str, operation: Awaitable[T], timeout: float) -> T:
    """Await one asyncua operation within `timeout`; failures come out as domain.errors."""
    try:
        async with asyncio.timeout(timeout):
            return await operation
    except Exception as exc:
        raise translate(exc, where, timeout) from exc


async def open_client(link: OpcUa, where: str) -> Client:
    """A connected, activated client as `link` says; domain.errors only.

    The server's endpoints are asked first, so a server that offers no endpoint
    with the configured security gets a message listing what it does offer.
    """
    budget = link.timeout * CONNECT_STEPS
    client = Client(link.endpoint, timeout=link.timeout, watchdog_intervall=PROBE_EVERY)
    client.name = client.description = "edge-agent"
    client.product_uri = "urn:edge-agent"
    client.session_timeout = SESSION_TIMEOUT_MS
    try:
        await call(where, _configure(client, link, where), budget)
        await call(where, client.connect(), budget)
    except DeviceTimeout as exc:
        client.disconnect_socket()
        raise DeviceTimeout(
            f"{where}: no answer while connecting (timeout {link.timeout:g}s)"
        ) from exc
    except DeviceRejected as exc:
        client.disconnect_socket()
        if ua.StatusCode(exc.code).name not in _LOGIN_REFUSED:  # type: ignore[arg-type]  # a plain int
            raise
        who = link.username or "anonymous"
        reason = str(exc).removeprefix(f"{where}: ")
        raise DeviceRejected(f"{where}: login refused as {who}: {reason}", exc.code) from exc
    except BaseException:
        client.disconnect_socket()  # asyncua leaves it open when cancelled mid-connect
        raise
    return client


async def close_client(client: Client, timeout: float) -> None:
    """Close the session if the server is there to hear it; always drop the socket."""
    try:
        async with asyncio.timeout(timeout):
            await client.disconnect()
    except Exception:  # closing: the server may be gone, there is nothing to report
        pass
    finally:
        client.disconnect_socket()


async def _configure(client: Client, link: OpcUa, where: str) -> None:
    if link.username:
        client.set_user(link.username)
    if link.password_file:
        client.set_password(_password(link.password_file, where))
    mode = _MODES[link.security]
    secure = link.security != "None"
    policy = (
        security_policies.SecurityPolicyBasic256Sha256
        if secure
        else security_policies.SecurityPolicyNone
    )
    endpoints = await client.connect_and_get_server_endpoints()
    chosen = [e for e in endpoints if e.SecurityMode == mode and e.SecurityPolicyUri == policy.URI]
    if not chosen:
        offered = sorted({_name_of(e) for e in endpoints}) or ["nothing"]
        raise PermanentError(
            f"{where}: the server offers no {link.security} endpoint "
            f"(it offers: {', '.join(offered)})"
        )
    if not secure:
        return
    certificate, private_key = await _own_pair(link, where)
    served = uacrypto.der_from_x509(uacrypto.x509_from_der(chosen[0].ServerCertificate))
    own = _read("certificate", certificate, security.read_certificate, where)
    key, key_format = _read("private_key", private_key, security.read_key, where)
    pinned = None
    if link.server_certificate:
        pinned = _read(
            "server_certificate", link.server_certificate, security.read_certificate, where
        )
    if pinned is not None and uacrypto.der_from_x509(pinned) != served:
        raise PermanentError(
            f"{where}: the server's certificate is not the one in {link.server_certificate}"
        )
    client.application_uri = security.certificate_uri(own) or security.application_uri()
    try:
        await client.set_security(
            policy,
            uacrypto.CertProperties(uacrypto.der_from_x509(own), "der"),
            uacrypto.CertProperties(key, key_format),
            server_certificate=served,
            mode=mode,
        )
    except (ValueError, TypeError) as exc:  # the key does not load (encrypted, not a key)
        raise PermanentError(f"{where}: cannot load private_key {private_key}: {exc}") from exc


async def _own_pair(link: OpcUa, where: str) -> tuple[Path, Path]:
    """The configured certificate and key, or the agent's own, made on first use."""
    if link.certificate and link.private_key:
        return Path(link.certificate), Path(link.private_key)
    if link.certificate or link.private_key:
        given, missing = (
            ("certificate", "private_key") if link.certificate else ("private_key", "certificate")
        )
        raise PermanentError(f"{where}: {given} is set without {missing}; give both or neither")
    directory = Path(security.expand(link.certificate_dir))
    try:
        return await asyncio.to_thread(
            security.own_certificate, directory, uri=security.application_uri()
        )
    except OSError as exc:
        raise PermanentError(
            f"{where}: cannot keep the agent's certificate in {directory}: {exc.strerror}"
        ) from exc


def _read(what: str, path: str | Path, reader: Callable[[str | Path], R], where: str) -> R:
    """A certificate or key file, or a PermanentError naming the field and the file."""
    try:
        return reader(path)
    except (OSError, ValueError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PermanentError(f"{where}: cannot load {what} {path}: {detail}") from exc


def _password(path: str, where: str) -> str:
    try:
        return security.read_password(path)
    except OSError as exc:
        raise PermanentError(f"{where}: cannot read password_file {path}: {exc.strerror}") from exc


def _name_of(endpoint: ua.EndpointDescription) -> str:
    policy = endpoint.SecurityPolicyUri.rpartition("#")[2]
    mode = endpoint.SecurityMode.name.rstrip("_")
    return "None" if mode == "None" else f"{policy}/{mode}"


# --- writes (a rule's action) ------------------------------------------------------

_V = ua.VariantType
_INTEGERS = {
    _V.SByte: (-(2**7), 2**7 - 1),
    _V.Byte: (0, 2**8 - 1),
    _V.Int16: (-(2**15), 2**15 - 1),
    _V.UInt16: (0, 2**16 - 1),
    _V.Int32: (-(2**31), 2**31 - 1),
    _V.UInt32: (0, 2**32 - 1),
    _V.Int64: (-(2**63), 2**63 - 1),
    _V.UInt64: (0, 2**64 - 1),
}
_WRITABLE = {_V.Boolean, _V.Float, _V.Double, *_INTEGERS}


async def write_node(
    client: Client, node: ua.NodeId, value: bool | int | float, where: str, timeout: float
) -> ua.VariantType:
    """Write `value` to a variable in the variable's own data type; the type written.

    A PLC refuses a value of another type (BadTypeMismatch), so the node's
    DataType and current value are read first, in one request, and a Boolean
    node gets a Boolean, a Double node a Double. No timestamps are sent: some
    PLCs refuse a write that carries them.
    """
    params = ua.ReadParameters()
    for attribute in (ua.AttributeIds.DataType, ua.AttributeIds.Value):
        item = ua.ReadValueId()
        item.NodeId, item.AttributeId = node, attribute
        params.NodesToRead.append(item)
    answers = await call(where, client.uaclient.read(params), timeout)
    if len(answers) != 2:
        raise BadReply(f"{where}: {len(answers)} answers to a read of 2 attributes")
    kind = _kind(answers[0], answers[1], where)
    variant = ua.Variant(_coerce(value, kind, where), kind)
    await call(where, client.get_node(node).write_value(ua.DataValue(variant)), timeout)
    return kind


def _kind(data_type: ua.DataValue, current: ua.DataValue, where: str) -> ua.VariantType:
    """The variant type a write must carry: the declared DataType when it is a built-in
    type, else (an abstract type like Number) the type of the value the node holds."""
    status = data_type.StatusCode if data_type.StatusCode is not None else ua.StatusCode()
    if not status.is_good():  # BadNodeIdUnknown, or not a variable
        raise DeviceRejected(f"{where}: {explain(status)}", status.value)
    declared = data_type.Value.Value if data_type.Value is not None else None
    kind: ua.VariantType | None = None
    if (
        isinstance(declared, ua.NodeId)
        and declared.NamespaceIndex == 0
        and isinstance(declared.Identifier, int)
        and declared.Identifier in {k.value for k in _V}
        and declared.Identifier not in (_V.Null.value, _V.Variant.value)
    ):
        kind = _V(declared.Identifier)
    else:
        held = current.Value
        good = current.StatusCode is None or current.StatusCode.is_good()
        if good and held is not None and held.VariantType is not _V.Null and not held.is_array:
            kind = held.VariantType
    if kind is None:
        shown = declared.to_string() if isinstance(declared, ua.NodeId) else "unknown"
        raise BadReply(f"{where}: cannot tell the node's type (DataType {shown}, no value held)")
    if kind not in _WRITABLE:
        raise BadReply(f"{where}: the node holds a {kind.name}; a rule writes Boolean or numbers")
    return kind


def _coerce(value: bool | int | float, kind: ua.VariantType, where: str) -> bool | int | float:
    """`value` as the node's type, or a PermanentError saying what the node takes."""
    if kind is _V.Boolean:
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise PermanentError(f"{where}: a Boolean node takes true or false (got {value})")
    if kind in _INTEGERS:
        low, high = _INTEGERS[kind]
        if isinstance(value, float) and not value.is_integer():
            raise PermanentError(f"{where}: a {kind.name} node takes whole numbers (got {value})")
        if not low <= int(value) <= high:
            raise PermanentError(f"{where}: a {kind.name} node takes {low}..{high} (got {value})")
        return int(value)
    return float(value)
