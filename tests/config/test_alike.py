"""Devices written alike, read by their distinct entries (config/alike.py): the data the
whole text gives, or a step aside so the whole text is read as before."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.alike import MIN_ITEMS, alike_data
from config.parse import _BASE_LOADER, parse_document
from config.plain import Unusual, plain_data
from tests.fixtures.config import GATEWAY, Problems

POINTS = "".join(
    f"      - {{name: p{j}, address: {2 * j}, type: float32"
    + (", unit: kWh, kind: counter}" if j == 0 else ", unit: kW}")
    + "\n"
    for j in range(5)
)


def _meters(count: int, *, points: str = POINTS, extra: str = "") -> str:
    return "".join(
        f"  - name: m{n}\n    modbus_tcp: {{host: 127.0.0.1, port: {20000 + n}}}\n"
        f"    poll: 1s\n{extra}    points:\n{points}"
        "    energy: {carrier: electricity, counter: p0}\n"
        for n in range(count)
    )


def _typed(value: Any) -> Any:
    """The value with each scalar's type beside it: 1, 1.0 and true told apart."""
    if isinstance(value, dict):
        return [(k, _typed(v)) for k, v in value.items()]  # in order, as written
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value), value if value == value else "nan")


def _agree(text: str, least: int = 1) -> Any:
    """alike_data gives what plain_data gives for the whole text, or steps aside (None,
    Unusual); never data where the whole text is Unusual. Its answer."""
    try:
        fast = alike_data(text, _BASE_LOADER, least)
    except Unusual:
        return Unusual
    try:
        whole = plain_data(text, _BASE_LOADER)
    except Unusual:
        assert fast is None, "read by parts a text that is unusual as a whole"
        return None
    if fast is not None:
        assert _typed(fast) == _typed(whole)
    return fast


def test_a_plant_is_read_by_its_distinct_entries_into_the_same_data() -> None:
    """200 meters: the same data as the whole text, each distinct entry one object (all
    the meters hold one `points` list and one `energy` mapping)."""
    text = GATEWAY + "devices:\n" + _meters(200) + "rules: []\n"
    data = _agree(text, MIN_ITEMS)
    assert data is not None
    devices = data["devices"]
    assert [d["name"] for d in devices] == [f"m{n}" for n in range(200)]
    assert devices[199]["modbus_tcp"] == {"host": "127.0.0.1", "port": 20199}
    assert len({id(d["points"]) for d in devices}) == len({id(d["energy"]) for d in devices}) == 1
    assert list(data) == ["gateway", "sync", "devices", "rules"]


def test_a_file_of_a_few_meters_is_read_whole() -> None:
    assert alike_data(GATEWAY + "devices:\n" + _meters(MIN_ITEMS - 1), _BASE_LOADER) is None


def test_the_config_is_read_by_parts_and_loads(problems: Problems) -> None:
    """parse_document takes the way by parts (the meters share their points list), and a
    problem in one meter is still at its line."""
    text = GATEWAY + "devices:\n" + _meters(100)
    doc = parse_document(text, "agent.yaml")
    assert doc.data["devices"][0]["points"] is doc.data["devices"][99]["points"]
    wrong = text.replace("port: 20042}", "port: 70000}")
    line = GATEWAY.count("\n") + 1 + 42 * (4 + 5 + 1) + 2
    assert problems(wrong) == [
        f"agent.yaml:{line}:41: devices[42].modbus_tcp.port: must be at most 65535 (got 70000)"
    ]


@pytest.mark.parametrize(
    ("extra", "found"),
    [
        ("    poll: 2s\n", "duplicate key 'poll' (first at line"),  # a key twice in a meter
        ("    a: &x 1\n    b: *x\n", "found duplicate anchor 'x'; first occurrence at line"),
        ("    <<: {c: 1}\n", "devices[0].c: unknown key"),  # a merge
        ("    tags: {0,5: 1}\n", "tags"),  # digits after a comma in flow style
    ],
)
def test_what_is_unusual_in_one_meter_is_worded_as_it_always_was(
    problems: Problems, extra: str, found: str
) -> None:
    """A part that is Unusual sends the whole file the long way: the same message."""
    text = GATEWAY + "devices:\n" + _meters(100, extra=extra)
    assert any(found in p for p in problems(text))
    assert _agree(text, MIN_ITEMS) in (None, Unusual)


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\r\ndevices:\r\n  - name: x\r\n",  # carriage returns
        "devices:\n  - name: x\n\tpoll: 1\n",  # a tab
        "%YAML 1.1\n---\ndevices:\n  - name: x\n",  # a directive
        "a: 1\n---\ndevices:\n  - name: x\n",  # two documents
        "devices:\n  - {name: x}\n  - {name: y}\n",  # items in flow style
        "devices:\n  - 'name': x\n",  # a quoted key
        "devices:\n  -   name: x\n  - name: y\n",  # items indented apart
        "devices:\n  - name: x\n   poll: 1\n",  # a line between item and key columns
        "devices:\n  - name: x\n    poll: 1",  # no line break at the end
    ],
)
def test_text_not_plain_enough_to_cut_is_read_whole(text: str) -> None:
    assert alike_data(text, _BASE_LOADER, 1) is None
    _agree(text)


@pytest.mark.parametrize(
    "text",
    [
        # a quoted scalar or a flow collection running across a cut
        'devices:\n  - name: "x\n    poll: 1"\n  - name: y\n',
        'devices:\n  - name: "x\n  - name: y"\n',
        "devices:\n  - name: [x,\n    poll, 1]\n  - name: y\n",
        "a: 'q\ndevices:\n  - name: x\nb: r'\n",
        "a: [1,\ndevices:\n  - name: x\n  ]\n",
        # block scalars, kept or stripped, with blank lines and comments after them
        "devices:\n  - name: |+\n      x\n\n    poll: >-\n      y\n\n  - name: z\n",
        "devices:\n  - name: |+\n      x\n\n# c\n\n  - note: |\n     y\n  # d\n\nb: 1\n",
        # compact lists at the key's column, comments at any depth, items at column 0
        "devices:\n  - points:\n    - a\n    - b\n    poll: 1\n#c\n  # d\n  - points:\n    - a\n",
        "devices:\n- name: x\n  poll: 1\n- name: y\nafter: 2\n",
        "devices:\n  - name: x\n    poll:\n  - name: y\nother:\n  - name: x\n",
        # a duplicate key in one item; the same entry in two items
        "devices:\n  - name: x\n    name: y\n",
        "devices:\n  - name: x\n    poll: 1\n  - name: y\n    poll: 1\n",
        "devices: # the meters\n\n  # first\n  - name: x\n",
        "devices:\n  - name: x\nrules:\n  - {name: r}\n  - name: s\n",  # one list read whole
        "devices:\n  - name: x\ndevices:\n  - name: y\n",
        "a: [\nb:\n  - x: 1\n]\nb:\n",  # a key inside a flow list, and at the top
        "a: '\nb:\n  - x: 1\n'\nb:\n",  # a key inside a quoted scalar, and at the top
    ],
)
def test_tricky_text_reads_as_the_whole_or_steps_aside(text: str) -> None:
    _agree(text)


_EDIT = st.tuples(
    st.integers(0, 10**4),
    st.sampled_from(["delete", "insert", "replace"]),
    st.text(alphabet=st.sampled_from(list("ab01:-{}[], '\"#&*|>?!\n")), max_size=4),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_EDIT, min_size=1, max_size=4))
def test_a_plant_edited_at_random_reads_as_the_whole_or_steps_aside(edits: list[Any]) -> None:
    """Characters of YAML's punctuation put in, replaced or taken out anywhere in a small
    plant: whatever the parts give is what the whole gives."""
    text = "a: 1\ndevices:\n" + _meters(3) + "other:\n  - b: 2\n    c: [3]\n"
    for at, kind, chars in edits:
        at %= len(text)
        if kind == "delete":
            text = text[:at] + text[at + len(chars) + 1 :]
        elif kind == "insert":
            text = text[:at] + chars + text[at:]
        else:
            text = text[:at] + chars + text[at + len(chars) :]
    _agree(text)


_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(alphabet=st.sampled_from(list("ab :-#'\"\n|>{}")), max_size=12)
    | st.sampled_from(["yes", "~", "1,5", "0x1F", "2024-01-01", "- x", "a: b"])
)
_value = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "c-d", "e_1"]), inner, max_size=3)
    ),
    max_leaves=8,
)
_item = st.dictionaries(st.sampled_from(["name", "poll", "points", "x"]), _value, min_size=1)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_item, min_size=1, max_size=4),
    st.sampled_from([None, False]),
    st.sampled_from([None, None, None, "'", '"', "|"]),  # keys quoted too: none to cut
    st.integers(2, 6),
    st.integers(10, 80),
)
def test_items_written_any_way_read_as_the_whole(
    items: list[Any], flow: bool | None, style: str | None, indent: int, width: int
) -> None:
    """Lists of mappings as PyYAML writes them: indented 2 to 6, lines folded at any
    width, scalars plain, quoted or as literal blocks."""
    data = {"first": 1, "devices": items, "last": copy.deepcopy(items[:1])}  # not an alias
    text = yaml.safe_dump(
        data, default_flow_style=flow, default_style=style, indent=indent, width=width,
        sort_keys=False, allow_unicode=True,
    )  # fmt: skip
    _agree(text)


def test_a_cut_that_would_leave_a_quote_open_steps_aside() -> None:
    """The check that each entry read is the one key it was cut at: two entries where a
    quote left open joins them are found out, not read as one."""
    text = 'devices:\n  - name: "a\n  - name: b"\n  - name: c\n'
    with pytest.raises(Unusual):
        alike_data(text, _BASE_LOADER, 1)
    whole = {"devices": [{"name": "a - name: b"}, {"name": "c"}]}
    assert plain_data(text, _BASE_LOADER) == whole
