"""From an OPC UA DataValue to a number, or to the reason there is none.

Only a Good status gives a value: Uncertain values (a last usable value, a
sensor out of calibration) are bad readings with their reason, because an
energy total must never be silently wrong. Status codes are named as the
server sent them, with a few words a technician can act on.
"""

from __future__ import annotations

import math

from asyncua import ua

from domain.errors import DecodeError
from drivers.opcua.settings import OpcUaPoint

__all__ = ["DecodeError", "decode", "explain"]

# Short explanations of the codes a meter's points commonly come back with.
_PLAIN = {
    "BadNodeIdUnknown": "node does not exist",
    "BadNodeIdInvalid": "not a valid node id for this server",
    "BadAttributeIdInvalid": "the node is not a variable",
    "BadNotReadable": "the server does not allow reading it",
    "BadUserAccessDenied": "access denied for this user",
    "BadWaitingForInitialData": "the server has no value yet",
    "BadNoCommunication": "the server has no link to the device behind it",
    "BadCommunicationError": "the server lost its link to the device behind it",
    "BadNotConnected": "the server is not connected to the device behind it",
    "BadOutOfService": "out of service",
    "BadSensorFailure": "sensor failure",
    "BadDeviceFailure": "device failure",
    "BadConfigurationError": "the server's configuration of it is wrong",
    "BadTimeout": "the server timed out",
    "BadTooManyOperations": "the server refuses this many nodes in one request",
    "BadIdentityTokenRejected": "the server does not accept this kind of login",
    "BadIdentityTokenInvalid": "the user name or password is not valid",
    "BadCertificateUntrusted": "the server does not trust the agent's certificate yet",
    "BadCertificateInvalid": "the server finds the agent's certificate invalid",
    "BadSecurityChecksFailed": "the server rejected the agent's certificate or signature",
    "BadSecurityPolicyRejected": "the server does not offer this security policy",
    "BadTooManySessions": "the server has too many sessions open",
    "BadTooManySubscriptions": "the server has too many subscriptions",
    "UncertainLastUsableValue": "the server repeats the last usable value",
    "UncertainSensorNotAccurate": "the sensor is not accurate",
    "UncertainEngineeringUnitsExceeded": "outside the range of the sensor",
    "UncertainInitialValue": "an initial value, not yet measured",
}


def explain(status: ua.StatusCode | int) -> str:
    """'BadNodeIdUnknown (node does not exist)': the code's name and what it means."""
    # asyncua annotates its own int subclass (ua.UInt32) but takes a plain int
    code = status if isinstance(status, ua.StatusCode) else ua.StatusCode(status)  # type: ignore[arg-type]
    name = code.name
    plain = _PLAIN.get(name)
    if plain is None:
        doc = (code.doc or "").strip().rstrip(".")
        plain = doc[:1].lower() + doc[1:] if doc else f"status {code.value:#010x}"
    return f"{name} ({plain})"


def decode(point: OpcUaPoint, data: ua.DataValue) -> float:
    """The point's value (raw x scale + offset) from a DataValue; DecodeError if none."""
    status = data.StatusCode if data.StatusCode is not None else ua.StatusCode()
    if not status.is_good():
        raise DecodeError(explain(status))
    variant = data.Value
    raw = variant.Value if variant is not None else None
    kind = variant.VariantType.name if variant is not None else "Null"
    if raw is None:
        raise DecodeError("the server sent no value (Null)")
    if isinstance(raw, bool):
        number = 1.0 if raw else 0.0
    elif isinstance(raw, int | float) and not getattr(variant, "is_array", False):
        number = float(raw)
    else:
        shown = repr(raw) if len(repr(raw)) <= 40 else repr(raw)[:37] + "..."
        raise DecodeError(f"not a number (got {shown}, a {kind})")
    if not math.isfinite(number):
        raise DecodeError(f"not a finite number (got {number}, a {kind})")
    return number * point.scale + point.offset
