"""Loading: YAML with positions, and every model error at its line and column."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import loader
from config.loader import LoadedConfig, load_config, load_config_apart
from config.parse import parse_document
from domain.errors import ConfigInvalid
from drivers.modbus.settings import ModbusTcpDevice
from drivers.registry import PROTOCOLS
from tests.fixtures.config import GATEWAY, METER, Load, Problems, Write

ROOT = Path(__file__).resolve().parents[2]

ONE_OF = ", ".join(PROTOCOLS)  # every protocol, in the registry's order


def test_the_example_plant_loads_with_only_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/plant.yaml, exactly as shipped, has no error, and its enterprise id passes
    the GB 32100 check digit: the only warning is the credential that systemd provides."""
    monkeypatch.chdir(ROOT)
    loaded = load_config("examples/plant.yaml", environ={})
    assert [str(w) for w in loaded.warnings] == [
        "examples/plant.yaml:15:15: sync.token_file: ${CREDENTIALS_DIRECTORY} is not set "
        "(systemd sets it with LoadCredential=; `edge-agent check --for-systemd` checks the "
        "file as the service will see it)",
    ]
    assert [d.name for d in loaded.config.devices] == [
        "main_incomer",
        "press_line_2",
        "boiler_gas",
        "workshop3",
        "output_counter",
    ]
    assert loaded.path == Path("examples/plant.yaml")


def test_the_example_plant_gets_its_profile_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """A device with `profile:` holds the profile's points after loading."""
    monkeypatch.chdir(ROOT)
    devices = {d.name: d for d in load_config("examples/plant.yaml", environ={}).config.devices}
    assert len(devices["main_incomer"].points) == 11
    assert devices["workshop3"].points[0].name == "import_kwh"


def test_a_valid_config_loads_without_problems(load: Load) -> None:
    """The smallest useful config loads with no warning."""
    loaded = load(GATEWAY + METER)
    assert loaded.warnings == []
    assert isinstance(loaded.config.devices[0], ModbusTcpDevice)


def test_a_syntax_error_is_reported_where_yaml_stopped(problems: Problems) -> None:
    """An unclosed flow sequence is reported at the token that broke it."""
    text = "gateway:\n  id: gw1\nemissions:\n  intervals: [1m, 15m\nsync: {}\n"
    assert problems(text) == [
        "agent.yaml:5:5: yaml: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence at line 4)"
    ]


def test_a_tab_indent_is_a_syntax_error(problems: Problems) -> None:
    """A tab where YAML wants spaces is reported at the tab."""
    assert problems("gateway:\n\tid: gw1\n") == [
        "agent.yaml:2:1: yaml: found character '\\t' that cannot start any token"
    ]


def test_an_unknown_top_level_key_suggests_the_right_one(problems: Problems) -> None:
    """`gatway` is reported at its key with a did-you-mean; the missing gateway too."""
    text = GATEWAY.replace("gateway:", "gatway:")
    assert problems(text) == [
        "agent.yaml:1:1: (top level): missing required field 'gateway'",
        "agent.yaml:1:1: gatway: unknown key (did you mean 'gateway'?)",
    ]


def test_an_unknown_point_key_is_reported_at_the_key(problems: Problems) -> None:
    """A misspelt key inside a list item points at the key itself."""
    text = GATEWAY + METER.replace(
        "{name: energy_kwh, address: 0,", "{name: energy_kwh, adress: 0,"
    )
    assert problems(text) == [
        "agent.yaml:12:9: devices[0].points[0]: missing required field 'address'",
        "agent.yaml:12:28: devices[0].points[0].adress: unknown key (did you mean 'address'?)",
    ]


def test_an_unknown_key_far_from_any_lists_the_allowed_ones(problems: Problems) -> None:
    """With no close match, the message lists the keys the mapping allows."""
    text = GATEWAY + "buffer:\n  colour: blue\n"
    assert problems(text) == [
        "agent.yaml:9:3: buffer.colour: unknown key"
        " (allowed keys: path, max_size, drop_synced, raw_retention)"
    ]


def test_a_wrong_type_names_what_was_expected_and_found(problems: Problems) -> None:
    """A decimal comma makes a string where a number is needed."""
    text = GATEWAY + METER.replace("kind: counter}", 'kind: counter, scale: "0,01"}')
    assert problems(text) == [
        "agent.yaml:12:87: devices[0].points[0].scale: must be a number (got '0,01', a string)"
    ]


def test_a_decimal_comma_in_flow_style_is_the_value_it_split(problems: Problems) -> None:
    """`{..., scale: 0,01}` reads in YAML as scale 0 and a key 01: the problem is the scale,
    written as it was, never an unknown key '01'."""
    text = GATEWAY + METER.replace("kind: counter}", "kind: counter, scale: 0,01}")
    assert problems(text) == [
        "agent.yaml:12:87: devices[0].points[0].scale: must be a number (got '0,01', a string)"
    ]


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    whole=st.from_regex(r"-?[0-9]{1,4}", fullmatch=True),
    parts=st.lists(st.from_regex(r"[0-9]{1,4}", fullmatch=True), min_size=1, max_size=3),
    then=st.sampled_from(["}", ", unit: kWh}"]),
)
def test_any_number_split_by_commas_is_named_whole(
    problems: Problems, whole: str, parts: list[str], then: str
) -> None:
    """However many commas split a number, the one problem names the field and the number."""
    written = ",".join([whole, *parts])
    point = f"{{name: p, address: 0, type: uint32, scale: {written}{then}"
    text = GATEWAY + METER.replace(
        "{name: energy_kwh, address: 0, type: uint32, unit: kWh, kind: counter}", point
    )
    text = text.replace("    energy: {carrier: electricity, counter: energy_kwh}\n", "")
    column = text.splitlines()[11].index(f"scale: {written}") + len("scale: ") + 1
    assert problems(text) == [
        f"agent.yaml:12:{column}: devices[0].points[0].scale: must be a number "
        f"(got {written!r}, a string)"
    ]


def test_a_comma_and_a_space_separate_entries_as_yaml_says(problems: Problems) -> None:
    """Only digits right after a number's comma are taken for its decimals; `0, 01` is YAML's
    two entries, and the stray key is reported as one."""
    text = GATEWAY + METER.replace("kind: counter}", "kind: counter, scale: 0, 01}")
    (problem,) = problems(text)
    assert "devices[0].points[0].01: unknown key" in problem


def test_a_value_outside_a_choice_lists_the_choices(problems: Problems) -> None:
    """A Literal field names its allowed values and what was written."""
    text = GATEWAY + (
        "devices:\n"
        "  - name: boiler\n"
        "    opcua: {endpoint: 'opc.tcp://10.0.0.5:4840', mode: subscribes}\n"
        "    points: [{name: flow, node: 'ns=2;s=Flow'}]\n"
    )
    assert problems(text) == [
        "agent.yaml:10:56: devices[0].opcua.mode: must be one of 'read', 'subscribe' "
        "(got 'subscribes')"
    ]


def test_a_value_below_its_minimum_says_the_minimum(problems: Problems) -> None:
    """Bounds are stated in plain words with the value found."""
    text = GATEWAY + METER.replace("{host: 10.0.0.1}", "{host: 10.0.0.1, port: 0}")
    assert problems(text) == [
        "agent.yaml:10:40: devices[0].modbus_tcp.port: must be at least 1 (got 0)"
    ]


def test_a_zero_duration_bound_is_written_as_a_duration(problems: Problems) -> None:
    """A bound on a duration field reads as a duration, as the technician wrote it."""
    text = GATEWAY + "  every: 0s\n" + METER
    assert problems(text) == ["agent.yaml:8:10: sync.every: must be more than 0 (got 0s)"]


def test_a_bare_number_is_not_a_duration(problems: Problems) -> None:
    """`poll: 5` is refused: seconds or minutes would be a guess."""
    text = GATEWAY + METER + "    poll: 5\n"
    assert problems(text) == [
        "agent.yaml:14:11: devices[0].poll: must be a duration like 500ms, 5s, 2m or 24h "
        "(got 5, a number)"
    ]


def test_a_missing_field_is_reported_at_its_parent_key(problems: Problems) -> None:
    """`host` missing in `modbus_tcp:` points at the modbus_tcp key."""
    text = GATEWAY + METER.replace("{host: 10.0.0.1}", "{port: 502}")
    assert problems(text) == [
        "agent.yaml:10:5: devices[0].modbus_tcp: missing required field 'host'"
    ]


def test_an_empty_section_is_reported_at_its_key(problems: Problems) -> None:
    """`modbus_tcp:` with nothing after it is shown at its key, not on the next line."""
    text = GATEWAY + METER.replace("modbus_tcp: {host: 10.0.0.1}", "modbus_tcp:")
    assert problems(text) == [
        "agent.yaml:10:5: devices[0].modbus_tcp: must be a mapping (key: value) (got nothing)"
    ]


def test_every_error_is_reported_at_once(problems: Problems) -> None:
    """Three unrelated mistakes give three problems in file order, not just the first."""
    text = GATEWAY.replace("id: gw1", "id: gw1\n  timezone: Asia/Chengdu") + (
        "buffer:\n"
        "  max_size: lots\n"
        "devices:\n"
        "  - name: meter\n"
        "    modbus_rtu: {port: /dev/ttyUSB0, unit: 0}\n"
    )
    assert problems(text) == [
        "agent.yaml:3:13: gateway.timezone: unknown time zone 'Asia/Chengdu' "
        "(for example Asia/Shanghai)",
        "agent.yaml:10:13: buffer.max_size: must be a size like 512MB or 2GB "
        "(got 'lots', a string)",
        "agent.yaml:13:44: devices[0].modbus_rtu.unit: must be at least 1 (got 0)",
    ]


def test_a_duplicate_key_names_the_first_line(problems: Problems) -> None:
    """A key written twice in one mapping is an error, not a silent override."""
    text = GATEWAY + METER + "    poll: 5s\n    poll: 10s\n"
    assert problems(text) == [
        "agent.yaml:15:5: devices[0].poll: duplicate key 'poll' (first at line 14)"
    ]


def test_anchors_and_merge_keys_are_followed(load: Load) -> None:
    """`<<: *anchor` merges a mapping; keys written beside it win."""
    text = GATEWAY + (
        "devices:\n"
        "  - &meter\n"
        "    name: first\n"
        "    modbus_tcp: &link {host: 10.0.0.1, unit: 1}\n"
        "    points: [{name: energy_kwh, address: 0, type: uint32, kind: counter}]\n"
        "  - <<: *meter\n"
        "    name: second\n"
        "    modbus_tcp: {<<: *link, unit: 2}\n"
    )
    devices = load(text).config.devices
    assert [(d.name, d.modbus_tcp.host, d.modbus_tcp.unit) for d in devices] == [
        ("first", "10.0.0.1", 1),
        ("second", "10.0.0.1", 2),
    ]


def test_an_error_in_a_merged_value_points_at_its_anchor(problems: Problems) -> None:
    """A bad value reached through an alias is reported where it is written."""
    text = GATEWAY + (
        "x-defaults: &defaults {poll: 5}\n"
        "devices:\n"
        "  - <<: *defaults\n"
        "    name: meter\n"
        "    modbus_tcp: {host: 10.0.0.1}\n"
        "    points: [{name: energy_kwh, address: 0}]\n"
    )
    assert problems(text) == [
        "agent.yaml:8:1: x-defaults: unknown key (allowed keys: gateway, buffer, sync, "
        "destinations, emissions, devices, rules, http)",
        "agent.yaml:8:30: devices[0].poll: must be a duration like 500ms, 5s, 2m or 24h "
        "(got 5, a number)",
    ]


def test_an_empty_file_says_what_a_config_needs(problems: Problems) -> None:
    """An empty file is a clear error, not a crash."""
    assert problems("# nothing yet\n") == [
        "agent.yaml:1:1: (top level): the file is empty; a config needs at least gateway: and sync:"
    ]


def test_a_list_at_the_top_level_is_refused(problems: Problems) -> None:
    """The top level must be a mapping of sections."""
    assert problems("- gateway\n- sync\n") == [
        "agent.yaml:1:1: (top level): must be a mapping of sections "
        "(gateway:, sync:, devices: ...), not a list"
    ]


def test_a_missing_file_is_a_config_problem(tmp_path: Path) -> None:
    """A path that does not exist gives ConfigInvalid, so `check` exits 78."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:1:1: (top level): cannot read: No such file or directory"
    ]


def test_bytes_that_are_not_utf8_are_located(write: Write) -> None:
    """A Latin-1 byte is reported at its line, not as a traceback."""
    path = write("")
    Path(path).write_bytes(b"gateway:\n  id: caf\xe9\n")
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path)
    assert [str(p) for p in caught.value.problems] == [
        "agent.yaml:2:10: yaml: not UTF-8 text (byte 0xe9)"
    ]


def test_an_unquoted_octal_looking_address_suggests_quotes(problems: Problems) -> None:
    """YAML 1.1 reads 000012345670 as an octal number; the message says to quote it."""
    text = GATEWAY + (
        "devices:\n"
        "  - name: workshop\n"
        "    dlt645: {port: /dev/ttyUSB1, address: 000012345670}\n"
        "    profile: dlt645-2007-energy\n"
    )
    assert problems(text) == [
        "agent.yaml:10:43: devices[0].dlt645.address: must be a string (got 000012345670, "
        'which YAML reads as the number 2739128; write it in quotes: "000012345670")'
    ]


def test_an_unquoted_no_suggests_quotes(problems: Problems) -> None:
    """YAML 1.1 reads `no` as false; the message says so."""
    text = GATEWAY + METER.replace(
        "modbus_tcp: {host: 10.0.0.1}", "modbus_rtu: {port: /dev/ttyUSB0, parity: no}"
    )
    assert problems(text) == [
        "agent.yaml:10:46: devices[0].modbus_rtu.parity: must be one of 'N', 'E', 'O' "
        '(got no, which YAML reads as the boolean false; write it in quotes: "no")'
    ]


def test_a_misspelt_protocol_is_suggested(problems: Problems) -> None:
    """A device whose protocol key is misspelt hears which protocol it probably meant."""
    text = GATEWAY + METER.replace("modbus_tcp:", "modbus_tpc:")
    assert problems(text) == [
        "agent.yaml:10:5: devices[0].modbus_tpc: unknown key (did you mean 'modbus_tcp'?); "
        f"a device needs exactly one of {ONE_OF}"
    ]


def test_a_device_with_two_protocols_is_refused(problems: Problems) -> None:
    """Two transports on one device are reported at the second."""
    text = GATEWAY + METER.replace(
        "modbus_tcp: {host: 10.0.0.1}", "modbus_tcp: {host: 10.0.0.1}\n    opcua: {endpoint: x}"
    )
    assert problems(text) == [
        "agent.yaml:11:5: devices[0].opcua: a device needs exactly one of "
        f"{ONE_OF} (found modbus_tcp and opcua)"
    ]


def test_a_device_without_protocol_says_so(problems: Problems) -> None:
    """A device with no transport at all is reported at the device."""
    text = GATEWAY + "devices:\n  - name: meter\n    poll: 5s\n"
    assert problems(text) == [
        f"agent.yaml:9:5: devices[0]: a device needs exactly one of {ONE_OF} (found none)"
    ]


def test_an_unsupported_tag_is_refused(problems: Problems) -> None:
    """Python tags are not constructed; they are reported at the value."""
    text = GATEWAY + "buffer:\n  path: !!python/object:os.system x\n"
    assert problems(text) == [
        "agent.yaml:9:9: buffer.path: tag !!python/object:os.system is not supported"
    ]


def test_a_recursive_alias_is_refused(problems: Problems) -> None:
    """An alias that contains itself is an error at its anchor, not an endless loop."""
    assert problems("devices: &d [*d]\n") == [
        "agent.yaml:1:10: devices[0]: an alias refers to the collection that contains it"
    ]


def test_the_daemon_loads_its_config_in_a_child_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """load_config_apart (a forked child) gives what load_config gives: the models, the
    warnings, positions for later problems, and the same ConfigInvalid for a bad file."""
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    loaded_in = _record_loading_pids(monkeypatch, tmp_path / "pids")
    here, apart = load_config("examples/plant.yaml"), load_config_apart("examples/plant.yaml")
    assert loaded_in() and os.getpid() not in loaded_in()  # loaded in a child, not here
    assert apart.config == here.config
    assert apart.warnings == here.warnings
    assert str(apart.problem_at(("sync", "url"), "x")) == "examples/plant.yaml:14:8: sync.url: x"
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "examples/plant.yaml").read_text().replace("poll: 5s", "poll: fast"))
    with pytest.raises(ConfigInvalid) as here_error:
        load_config(bad)
    with pytest.raises(ConfigInvalid) as apart_error:
        load_config_apart(bad)
    assert apart_error.value.problems == here_error.value.problems
    assert any("poll" in str(p) for p in apart_error.value.problems)
    assert os.getpid() not in loaded_in()  # the bad file too was loaded in a child


def _record_loading_pids(monkeypatch: pytest.MonkeyPatch, record: Path) -> Callable[[], list[int]]:
    """Make every load_config that load_config_apart runs note its process id in `record`."""
    real = loader.load_config

    def noting(*args: Any, **kwargs: Any) -> LoadedConfig:
        with record.open("a") as out:
            out.write(f"{os.getpid()}\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(loader, "load_config", noting)
    return lambda: [int(line) for line in record.read_text().split()]


def test_a_child_that_fails_unexpectedly_never_returns_into_the_caller(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A bug while loading (not a ConfigInvalid) ends the forked child there: the caller
    loads again itself and gets the error, and only the caller goes on past the call."""
    parent, returned = os.getpid(), tmp_path / "returned"

    def broken(*args: Any, **kwargs: Any) -> LoadedConfig:
        raise RuntimeError("a bug in the loader")

    monkeypatch.setattr(loader, "load_config", broken)
    try:
        with pytest.raises(RuntimeError, match="a bug in the loader"):
            load_config_apart(ROOT / "examples/plant.yaml")
    finally:
        with returned.open("a") as out:
            out.write(f"{os.getpid()}\n")
        if os.getpid() != parent:  # an escaped child: stop it before it runs more tests
            os._exit(0)
    assert returned.read_text().split() == [str(parent)]


def test_meters_of_one_type_share_one_set_of_points(write: Write) -> None:
    """Identical points of different devices are one frozen model after loading (in the
    daemon's forked load too), so 200 meters of one profile cost one set of points."""
    meters = "".join(
        f"  - name: m{i}\n    profile: eastron-sdm630\n    modbus_tcp: {{host: 10.0.0.{i}}}\n"
        for i in range(1, 4)
    )
    path = write(GATEWAY + "devices:\n" + meters)
    for loaded in (load_config(path), load_config_apart(path)):
        first, *others = loaded.config.devices
        assert len(first.points) == 11
        assert all(o.points[i] is p for o in others for i, p in enumerate(first.points))
        assert [d.modbus_tcp.host for d in loaded.config.devices] == [
            "10.0.0.1", "10.0.0.2", "10.0.0.3"
        ]  # fmt: skip


def test_aliases_that_expand_without_end_are_stopped_at_the_copy(problems: Problems) -> None:
    """A "billion laughs" file (nine lines, 10^9 values once expanded) is refused at the
    alias where the copies pass ten times what is written, quickly and in little memory."""
    lines = ['a0: &a0 ["lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    (found,) = problems("\n".join(lines) + "\n")
    assert found.startswith("agent.yaml:")
    assert "aliases expand 12 written values to more than 100120" in found


def test_a_large_plant_written_out_is_not_taken_for_an_alias_bomb(
    write: Write, tmp_path: Path
) -> None:
    """1,000 meters written point by point (no alias at all; 130,000 values, where a
    fixed cap of 100,000 used to refuse 770 meters) load: the guard limits what aliases
    add, not the size of the file."""
    meters = "".join(
        f"  - name: m{i}\n    modbus_tcp: {{host: 127.0.0.1, unit: {i % 247 + 1}}}\n"
        "    points:\n"
        + "".join(
            f"      - {{name: p{j}, address: {2 * j}, type: float32, unit: kW}}\n"
            for j in range(20)
        )
        for i in range(1000)
    )
    loaded = load_config(write(GATEWAY + "devices:\n" + meters))
    assert len(loaded.config.devices) == 1000


def test_the_collector_is_paused_while_a_config_loads_and_given_back(
    load: Load, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking runs with the cyclic collector off (a 5,000-meter file: half the time);
    afterwards it is as it was, also when the config is refused."""
    seen: list[bool] = []
    checked = loader._checked

    def watched(*args: Any) -> Any:
        seen.append(gc.isenabled())
        return checked(*args)

    monkeypatch.setattr(loader, "_checked", watched)
    assert gc.isenabled()
    load(GATEWAY + METER)
    assert seen == [False] and gc.isenabled()
    with pytest.raises(ConfigInvalid):
        load(GATEWAY + "devices: 7\n")
    assert seen == [False, False] and gc.isenabled()
    gc.disable()
    try:
        load(GATEWAY + METER)
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


_SCALARS = ["1", "010", "0x1F", "1.5", "1e3", ".inf", "yes", "no", "true", "null", "~", "",
            "2024-01-01", "12:30", "abc"]  # fmt: skip


@given(
    st.lists(
        st.tuples(st.sampled_from(_SCALARS), st.sampled_from(["{}", "'{}'", '"{}"', "!!str {}"])),
        max_size=30,
    )
)
def test_each_scalar_is_read_as_yaml_reads_it_however_often_it_comes(
    items: list[tuple[str, str]],
) -> None:
    """config/parse.py resolves each distinct scalar's tag once and builds each distinct
    value once: the same text plain, quoted or tagged, again and again, still reads as
    PyYAML's safe loader reads it, each one in its own way."""
    text = "".join(f"- {form.format(value)}\n" for value, form in items) or "[]\n"
    assert parse_document(text, "agent.yaml").data == yaml.safe_load(text)


def test_the_daemon_works_meanwhile_while_its_child_loads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`meanwhile` runs in the caller (the daemon's imports) while the child loads; if it
    fails, the child is still read and reaped, and the failure is the caller's."""
    monkeypatch.chdir(ROOT)
    loaded_in = _record_loading_pids(monkeypatch, tmp_path / "pids")
    ran_in: list[int] = []
    loaded = load_config_apart("examples/plant.yaml", meanwhile=lambda: ran_in.append(os.getpid()))
    assert ran_in == [os.getpid()] and os.getpid() not in loaded_in()
    assert loaded.config.devices[0].name == "main_incomer"

    def failing() -> None:
        raise ImportError("no such module")

    with pytest.raises(ImportError, match="no such module"):
        load_config_apart("examples/plant.yaml", meanwhile=failing)
    child = loaded_in()[-1]
    with pytest.raises(ChildProcessError):  # reaped already: not left behind as a zombie
        os.waitpid(child, os.WNOHANG)
