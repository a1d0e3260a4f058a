"""propose(): what `init --opcua` writes from the variables a server holds."""

from __future__ import annotations

from config.loader import load_profile
from drivers.opcua.browse import Variable
from drivers.opcua.settings import OpcUaPoint
from drivers.opcua.starter import MOST, propose

KNOWN = [p for p in load_profile("opcua-energy-meter").profile.points if isinstance(p, OpcUaPoint)]


def variable(path: str, node: str, data_type: str = "Double", value: str = "1") -> Variable:
    return Variable(node, path, data_type, value)


def test_a_profile_name_gives_the_point_its_name_unit_and_kind() -> None:
    """By the profile's browse name or its point name, in any case or punctuation."""
    found = propose(
        [
            variable("Meter/ImportActiveEnergy", "ns=4;i=7", value="12345.67"),
            variable("Meter/power-kw", "ns=4;s=P"),
            variable("Meter/FREQUENCY", "ns=4;i=9", "Float"),
        ],
        KNOWN,
    )
    assert [(p.fields, p.change) for p in found] == [
        ({"name": "import_kwh", "node": "ns=4;i=7", "unit": "kWh", "kind": "counter"}, False),
        ({"name": "power_kw", "node": "ns=4;s=P", "unit": "kW"}, False),
        ({"name": "frequency_hz", "node": "ns=4;i=9", "unit": "Hz"}, False),
    ]
    assert found[0].note == "Meter/ImportActiveEnergy, Double, now 12345.67"


def test_other_numbers_are_named_from_their_browse_name_and_marked() -> None:
    """A name of its own, unique, with a CHANGE mark; text, booleans and dates are left out;
    a second meter's ImportActiveEnergy does not take the name twice."""
    found = propose(
        [
            variable("M1/ImportActiveEnergy", "ns=3;i=1"),
            variable("M2/ImportActiveEnergy", "ns=3;i=2"),
            variable("M1/P total (kW)", "ns=3;i=3", "Int32"),
            variable("M2/P total (kW)", "ns=3;i=4", "Int32"),
            variable("M1/3phase", "ns=3;i=5", "UInt16"),
            variable("M1/Running", "ns=3;i=6", "Boolean"),
            variable("M1/Serial", "ns=3;i=7", "String"),
        ],
        KNOWN,
    )
    assert [(p.fields["name"], p.change) for p in found] == [
        ("import_kwh", False),
        ("import_active_energy", True),
        ("p_total_kw", True),
        ("p_total_kw_2", True),
        ("v_3phase", True),
    ]


def test_a_large_server_is_cut_with_a_note() -> None:
    """At most MOST points; a note says how many more there are and where to see them."""
    found = propose([variable(f"Tags/T{i}", f"ns=2;i={i}") for i in range(MOST + 7)], KNOWN)
    assert len([p for p in found if p.fields]) == MOST
    assert found[-1].fields == {}
    assert found[-1].note.startswith("7 more numeric variables not written")
