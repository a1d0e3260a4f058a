"""A whole plant in one file, and the shortcuts that load it quickly agreeing with the
long way: data from the parser's events against the recording builder, positions found
by walking against positions recorded, points validated once against each device whole."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import model_validator

from agent.cli import main
from config import loader, parse
from config.loader import load_config
from config.parse import _BASE_LOADER, _Builder, _compose
from config.plain import Tree, Unusual, Walk, plain_data
from config.valid_devices import _DEVICE, _made_point_adapter, _valid
from domain.errors import ConfigInvalid
from drivers.modbus.settings import ModbusTcpDevice
from tests.fixtures.config import GATEWAY, Problems, Write

POINTS = 20


def _plant(meters: int, rules: bool = False) -> str:
    """Meters written point by point, as a technician's tool would write them out; with
    `rules`, an alarm on each meter's p1."""
    points = "".join(
        f"      - {{name: p{j}, address: {2 * j}, function: input, type: float32"
        + (", unit: kWh, kind: counter}" if j == 0 else ", unit: kW}")
        + "\n"
        for j in range(POINTS)
    )
    devices = "".join(
        f"  - name: m{n}\n    modbus_tcp: {{host: 127.0.0.1, port: {20000 + n}}}\n"
        f"    poll: 1s\n    points:\n{points}"
        "    energy: {carrier: electricity, counter: p0}\n"
        for n in range(meters)
    )
    alarms = "".join(
        f"  - {{name: r{n}, device: m{n}, quantity: p1, above: 100}}\n" for n in range(meters)
    )
    return GATEWAY + "devices:\n" + devices + ("rules:\n" + alarms if rules else "")


def test_a_plant_of_5000_meters_written_point_by_point_loads_and_checks(
    write: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    """5,000 meters x 20 points and an alarm on each, no alias anywhere (a million
    values): it loads whole, with every point, and `check` passes it (bench/startup.py
    times it)."""
    path = write(_plant(5000, rules=True))
    loaded = load_config(path)
    assert loaded.warnings == []
    assert len(loaded.config.devices) == len(loaded.config.rules) == 5000
    assert [len(d.points) for d in loaded.config.devices] == [POINTS] * 5000
    last = loaded.config.devices[-1]
    assert (last.name, last.modbus_tcp.port, last.points[-1].address) == ("m4999", 24999, 38)
    capsys.readouterr()
    assert main(["check", "-c", path]) == 0
    assert capsys.readouterr().out == f"{path}: ok (5000 devices, 5000 rules)\n"


def test_an_error_in_a_large_plant_is_at_its_line(problems: Problems) -> None:
    """In a large file, a problem is still shown where it was written: the 1,000th
    meter's 8th point (file line 8 + 999 x 25 + 4 + 7)."""
    text = _plant(1000).replace("{name: p7, address: 14,", "{name: p7, address: 70000,", 1000)
    text = text.replace("{name: p7, address: 70000,", "{name: p7, address: 14,", 999)
    (found,) = problems(text)
    line = 1 + GATEWAY.count("\n") + 1 + 999 * (5 + POINTS) + 4 + 7
    assert found.startswith(f"agent.yaml:{line}:")
    assert "devices[999].points[7].address: must be at most 65535 (got 70000)" in found


def test_a_point_written_alike_but_typed_apart_is_validated_apart(problems: Problems) -> None:
    """`address: 1` and `address: true` are equal in Python; the second is still refused
    though the first point, otherwise the same, validated (the points' cache keys on the
    very values written, not on equality)."""
    meters = "".join(
        f"  - name: m{i}\n    modbus_tcp: {{host: 10.0.0.{i}}}\n"
        f"    points:\n      - {{name: v, address: {address}}}\n"
        for i, address in ((1, "1"), (2, "true"), (3, "1.0"))
    )
    found = problems(GATEWAY + "devices:\n" + meters)
    assert [p.split(": ", 2)[1:] for p in found] == [
        ["devices[1].points[0].address", "must be a whole number (got true, a boolean)"],
        ["devices[2].points[0].address", "must be a whole number (got 1.0, a number)"],
    ]


def test_a_shared_point_model_is_checked_as_each_device_wrote_it(problems: Problems) -> None:
    """Two points equal as models, one with word_order written: only that one is told it
    is meaningless (checks see what was written, each point model checked where used)."""
    meters = "".join(
        f"  - name: m{i}\n    modbus_tcp: {{host: 10.0.0.{i}}}\n"
        f"    points:\n      - {{name: v, address: 1, type: int16{extra}}}\n"
        for i, extra in ((1, ""), (2, ", word_order: big"), (3, ""), (4, ", word_order: big"))
    )
    found = problems(GATEWAY + "devices:\n" + meters)
    assert [p.split(": ", 2)[1] for p in found] == [
        "devices[1].points[0].word_order",
        "devices[3].points[0].word_order",
    ]


def test_points_are_validated_with_their_device_when_its_model_may_look_at_them() -> None:
    """A device model with a validator of its own validates its points with the device,
    never apart (a protocol may add one; the shortcut then steps aside)."""

    class Checked(ModbusTcpDevice):
        @model_validator(mode="after")
        def _looks(self) -> Checked:
            return self

    assert _made_point_adapter(Checked) is None
    assert _made_point_adapter(ModbusTcpDevice) is not None


# --- the fast path agrees with the recording builder -------------------------------

_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.dates()
    | st.sampled_from(["0,01", "1,5", "yes", "no", "~", "<<", "*a", "&a", "1e3", "0x1F"])
)
_key = st.text(max_size=6) | st.sampled_from(["<<", "1", "01", "name", "? x", "- y"])
_data = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_key, inner, max_size=4),
    max_leaves=20,
)
_yamlish = st.text(
    alphabet=st.sampled_from(list("ab01,.:-{}[]&*!<>#'\"|? \n\t")), min_size=0, max_size=60
)


def _typed(value: Any) -> Any:
    """The value with each scalar's type beside it: 1, 1.0 and true told apart."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value), value if value == value else "nan")


def _agree(text: str) -> None:
    """Data from events equals the builder's data, and every position the builder
    records is the one a walk finds; or the fast path gave up (Unusual)."""
    try:
        fast = plain_data(text, _BASE_LOADER)
    except Unusual:
        return
    root = _compose(text, "t.yaml")  # must not raise: the fast path parsed it
    builder = _Builder("t.yaml", root)
    slow = None if root is None else builder.build(root, ())
    assert builder.problems == []
    assert _typed(fast) == _typed(slow)
    tree = Tree(lambda: root)
    values, keys = Walk(tree), Walk(tree, keys=True)
    for path, node in builder.values.items():
        assert values.get(path) is node
        assert keys.get(path) is builder.keys.get(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_data, st.sampled_from([None, True, False]), st.sampled_from(["'", '"', None]))
def test_data_written_any_way_reads_the_same_by_either_path(
    data: Any, flow: bool | None, style: str | None
) -> None:
    """Any data PyYAML writes, in block or flow style, quoted or plain."""
    _agree(yaml.safe_dump(data, default_flow_style=flow, default_style=style, sort_keys=False))


@settings(max_examples=500, deadline=None)
@given(_yamlish)
def test_garbage_reads_the_same_by_either_path_or_goes_the_long_way(text: str) -> None:
    """Text of YAML's punctuation: what the fast path accepts, the builder reads alike."""
    _agree(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\na: 2\n",  # duplicate key
        "a: &x 1\nb: *x\n",  # anchor and alias
        "a: {b: 1}\n<<: {c: 2}\n",  # merge
        "{scale: 0,01}\n",  # a decimal comma in flow style
        "a: !!python/name:os.system x\n",  # a tag not supported
        "a: !!int x\n",  # a scalar that does not construct
        "---\na: 1\n---\nb: 2\n",  # two documents
        "? [a]\n: 1\n",  # a key that is not a scalar
        "a: b: c\n",  # a syntax error
        "",  # nothing
    ],
)
def test_what_only_the_builder_handles_takes_the_long_way(text: str) -> None:
    """Each thing the recording builder words or refuses is Unusual to the fast path."""
    with pytest.raises(Unusual):
        plain_data(text, _BASE_LOADER)


@pytest.mark.parametrize(
    ("depth", "in_rules"),
    [
        (900, "agent.yaml:8:9: rules[0]: must be a mapping (key: value) (got a list)"),
        (5000, "agent.yaml:1:1: yaml: nested too deeply"),
    ],
)
def test_a_file_nested_too_deeply_is_a_problem_either_way(
    problems: Problems, depth: int, in_rules: str
) -> None:
    """Lists in lists 900 or 5,000 deep: with a duplicate key, which sends the file the
    long way, too deep (the builder recursed past the limit at 900 before: a traceback);
    read from events, the problem validation finds, or too deep where composing the tree
    for its position cannot go."""
    deep = "[" * depth + "]" * depth
    assert problems(f"a: 1\na: 2\nb: {deep}\n") == ["agent.yaml:1:1: yaml: nested too deeply"]
    assert problems(GATEWAY + f"rules: {deep}\n") == [in_rules]


def test_a_date_and_a_number_read_alike_either_way() -> None:
    """Scalars the fast path constructs once and shares are the builder's values."""
    text = "a: 2024-01-01\nb: [1, 1.0, '1', true]\nc: {d: 2024-01-01}\n"
    assert plain_data(text, _BASE_LOADER) == {
        "a": datetime.date(2024, 1, 1),
        "b": [1, 1.0, "1", True],
        "c": {"d": datetime.date(2024, 1, 1)},
    }
    _agree(text)


def test_a_large_plant_file_is_not_kept_as_a_node_tree(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that loads cleanly is never composed into nodes (380 MiB at 5,000 meters)."""
    composed: list[str] = []
    real = parse._compose

    def counted(text: str, file: str) -> Any:
        composed.append(file)
        return real(text, file)

    monkeypatch.setattr(parse, "_compose", counted)
    load_config(write(_plant(3)))
    assert composed == []


def test_the_example_files_take_the_fast_path() -> None:
    """The shipped example and every profile are plain enough for the fast path."""
    root = Path(__file__).resolve().parents[2]
    files = [root / "examples" / "plant.yaml", *sorted(root.glob("drivers/*/profiles/*.yaml"))]
    for path in files:
        plain_data(path.read_text(encoding="utf-8"), _BASE_LOADER)  # Unusual would fail


# --- a config read the quick way or the long way: the same config, the same problems ---


def _outcome(path: str, *, long_way: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The config and warnings, or the problems, of loading `path` (the long way: never
    from events, each device validated whole)."""

    def never(text: str, loader: Any) -> Any:
        raise Unusual

    def whole(items: Any) -> tuple[dict[int, Any], bool]:
        if not isinstance(items, list):
            return {}, False
        valid = {i: _valid(_DEVICE, item) for i, item in enumerate(items)}
        valid = {i: device for i, device in valid.items() if device is not None}
        return valid, len(valid) == len(items)

    with monkeypatch.context() as patch:
        if long_way:
            patch.setattr(parse, "alike_data", lambda text, loader: None)
            patch.setattr(parse, "plain_data", never)
            patch.setattr(loader, "valid_devices", whole)
        try:
            loaded = load_config(path, environ={})
        except ConfigInvalid as exc:
            return [str(p) for p in exc.problems]
        return loaded.config, [str(w) for w in loaded.warnings]


_EDIT = st.tuples(
    st.sampled_from(["delete", "repeat", "replace", "insert"]),
    st.integers(0, 10**4),
    st.integers(0, 200),
    st.sampled_from(list("ab01:-{}[], '\"x9.#&*")),
)


# each example writes the same file over and patches only within itself
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(_EDIT, min_size=1, max_size=3), st.booleans())
def test_any_edit_of_a_config_reads_the_same_either_way(
    write: Write, monkeypatch: pytest.MonkeyPatch, edits: list[Any], plant: bool
) -> None:
    """The shipped example (profiles, several protocols) or meters written out with a
    rule each, edited at random (lines deleted or repeated, characters replaced or
    inserted): loading gives the same config and warnings, or the same problems, as the
    long way."""
    root = Path(__file__).resolve().parents[2]
    base = (
        (root / "examples" / "plant.yaml").read_text(encoding="utf-8")
        if plant
        else (_plant(3, rules=True))
    )
    lines = base.splitlines(keepends=True)
    for kind, i, j, char in edits:
        i %= len(lines)
        line = lines[i]
        if kind == "delete" and len(lines) > 1:
            del lines[i]
        elif kind == "repeat":
            lines.insert(i, line)
        elif kind == "replace":
            lines[i] = line[: j % len(line)] + char + line[j % len(line) + 1 :]
        elif kind == "insert":
            lines[i] = line[: j % len(line)] + char + line[j % len(line) :]
    path = write("".join(lines))
    quick = _outcome(path, long_way=False, monkeypatch=monkeypatch)
    assert quick == _outcome(path, long_way=True, monkeypatch=monkeypatch)
