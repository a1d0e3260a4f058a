"""From DataValues to numbers or reasons: a table of what servers send."""

from __future__ import annotations

import pytest
from asyncua import ua

from domain.errors import DecodeError
from drivers.opcua._link import parse_node
from drivers.opcua.codec import decode, explain
from drivers.opcua.settings import OpcUaPoint

POINT = OpcUaPoint(name="p", node="ns=2;s=X")


def value(raw: object, variant: ua.VariantType | None = None, status: int = 0) -> ua.DataValue:
    return ua.DataValue(ua.Variant(raw, variant), StatusCode=ua.StatusCode(status))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (value(12.5), 12.5),
        (value(7, ua.VariantType.UInt32), 7.0),
        (value(-3, ua.VariantType.Int16), -3.0),
        (value(True), 1.0),
        (value(False), 0.0),
        (value(1.5, ua.VariantType.Float), 1.5),
        (value(4.0, status=ua.StatusCodes.GoodClamped), 4.0),
    ],
)
def test_numbers_and_booleans_decode(data: ua.DataValue, expected: float) -> None:
    """Every numeric type is a float; a boolean is 1.0 or 0.0."""
    assert decode(POINT, data) == expected


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (value("12,5"), "not a number (got '12,5', a String)"),
        (value([1.0, 2.0]), "not a number (got [1.0, 2.0], a Double)"),
        (value(None), "the server sent no value (Null)"),
        (value(float("nan")), "not a finite number (got nan, a Double)"),
        (
            value(None, status=ua.StatusCodes.BadNodeIdUnknown),
            "BadNodeIdUnknown (node does not exist)",
        ),
        (
            value(3.0, status=ua.StatusCodes.UncertainLastUsableValue),
            "UncertainLastUsableValue (the server repeats the last usable value)",
        ),
    ],
)
def test_what_is_not_a_good_number_says_why(data: ua.DataValue, reason: str) -> None:
    """Strings, arrays, nulls, NaN, bad and uncertain statuses are refused with a reason."""
    with pytest.raises(DecodeError) as caught:
        decode(POINT, data)
    assert str(caught.value) == reason


def test_scale_and_offset() -> None:
    """raw x scale + offset."""
    point = OpcUaPoint(name="p", node="i=1", scale=0.001, offset=-1.0)
    assert decode(point, value(2500.0)) == pytest.approx(1.5)


def test_a_status_without_a_short_text_uses_the_standard_description() -> None:
    """Unlisted codes still read as a sentence, from the standard's text."""
    assert explain(ua.StatusCodes.BadEncodingError) == (
        "BadEncodingError (encoding halted because of invalid data in the objects being serialized)"
    )


@pytest.mark.parametrize("text", ["ns=2;s=Boiler.GasVolume", "i=2258", "ns=3;i=1001"])
def test_node_ids_parse(text: str) -> None:
    """The forms a technician copies from a browse listing."""
    assert parse_node(text).to_string() == text


def test_a_malformed_node_id_says_how_to_write_one() -> None:
    """The message shows the two common forms."""
    with pytest.raises(DecodeError, match=r"write it like ns=2;s=Meter.Energy"):
        parse_node("ns=x;i=1")
