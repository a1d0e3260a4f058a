"""Cross-field rules: each problem at the node to fix, warnings only for what is legal."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from config.profiles import list_profiles
from tests.fixtures.config import GATEWAY, METER, Load, Problems

TZ = ZoneInfo("Asia/Shanghai")
RULES_DEVICES = """\
devices:
  - name: incomer
    modbus_tcp: {host: 10.0.0.1}
    points: [{name: energy_kwh, address: 0, type: uint32, kind: counter}]
  - name: boiler
    opcua: {endpoint: 'opc.tcp://10.0.0.5:4840'}
    points: [{name: gas_m3, node: 'ns=2;s=Gas', kind: counter}]
rules:
"""
"""Lines 8-15 after GATEWAY: rules written after it start at line 16."""


def test_energy_must_name_a_point_of_the_device(problems: Problems) -> None:
    """A counter that is not a point of the device is reported with a suggestion."""
    text = GATEWAY + METER.replace("counter: energy_kwh}", "counter: energy_kw}")
    assert problems(text) == [
        "agent.yaml:13:45: devices[0].energy.counter: no point 'energy_kw' in this device "
        "(did you mean 'energy_kwh'?)"
    ]


def test_energy_needs_a_counter_point(problems: Problems) -> None:
    """A gauge cannot be integrated as a cumulative total; the message says why."""
    text = GATEWAY + METER.replace(
        "kind: counter}", "kind: counter}\n      - {name: power_kw, address: 2, type: float32}"
    ).replace("counter: energy_kwh}", "counter: power_kw}")
    assert problems(text) == [
        "agent.yaml:14:45: devices[0].energy.counter: 'power_kw' is a gauge; energy needs a "
        "cumulative counter point (kind: counter)"
    ]


def test_production_needs_a_counter_point_too(problems: Problems) -> None:
    """production.counter follows the same rule as energy.counter."""
    text = GATEWAY + METER + "    production: {counter: units}\n"
    assert problems(text) == [
        "agent.yaml:14:27: devices[0].production.counter: no point 'units' in this device "
        "(known: energy_kwh)"
    ]


def test_device_names_are_unique(problems: Problems) -> None:
    """A second device of the same name is reported with the line of the first."""
    text = GATEWAY + METER + METER.removeprefix("devices:\n")
    assert problems(text) == [
        "agent.yaml:14:11: devices[1].name: duplicate device name 'meter' (first at line 9)"
    ]


def test_point_names_are_unique_within_a_device(problems: Problems) -> None:
    """Two own points of one name are reported at the second."""
    point = "      - {name: energy_kwh, address: 0, type: uint32, unit: kWh, kind: counter}\n"
    text = GATEWAY + METER.replace(point, point + point.replace("address: 0", "address: 2"))
    assert problems(text) == [
        "agent.yaml:13:16: devices[0].points[1].name: duplicate point name 'energy_kwh' "
        "(first at line 12)"
    ]


def test_a_device_needs_a_point(problems: Problems) -> None:
    """A device without points or profile has nothing to poll."""
    text = GATEWAY + "devices:\n  - name: meter\n    modbus_tcp: {host: 10.0.0.1}\n"
    assert problems(text) == [
        "agent.yaml:9:5: devices[0]: device 'meter' has no points: list them under points: "
        "or name a profile:"
    ]


def test_word_order_on_a_single_register_is_refused(problems: Problems) -> None:
    """word_order written on a 16-bit type is an error, from the one type table."""
    text = GATEWAY + METER.replace(
        "kind: counter}",
        "kind: counter}\n      - {name: pf, address: 4, type: int16, word_order: little}",
    )
    assert problems(text) == [
        "agent.yaml:13:45: devices[0].points[1].word_order: word_order is meaningless "
        "with type: int16"
    ]


def test_a_coil_with_a_register_type_is_refused(problems: Problems) -> None:
    """Coils and discrete inputs are single bits."""
    text = GATEWAY + METER.replace(
        "kind: counter}",
        "kind: counter}\n      - {name: run, address: 1, function: discrete, type: uint16}",
    )
    assert problems(text) == [
        "agent.yaml:13:59: devices[0].points[1].type: a discrete is a single bit: "
        "type must be bool (got uint16)"
    ]


def test_intervals_must_divide_an_hour_and_be_distinct(problems: Problems) -> None:
    """Each interval is at least 1s, divides an hour (or is a day), and appears once."""
    text = GATEWAY + "emissions:\n  intervals: [500ms, 7m, 15m, 15m]\n" + METER
    assert problems(text) == [
        "agent.yaml:9:15: emissions.intervals[0]: must be at least 1s (got 500ms)",
        "agent.yaml:9:22: emissions.intervals[1]: must divide an hour "
        "(1m, 5m, 15m, 30m, 1h ...) or be 1d (got 7m)",
        "agent.yaml:9:31: emissions.intervals[3]: duplicate interval 15m",
    ]


def test_lengths_that_divide_an_hour_and_one_day_are_accepted(load: Load) -> None:
    """From 1s to 1h any divisor of an hour aligns on the clock; 24h is the local day."""
    lengths = "[1s, 10s, 1m, 5m, 15m, 30m, 60m, 24h]"
    config = load(GATEWAY + f"emissions:\n  intervals: {lengths}\n" + METER).config
    assert config.emissions.intervals == [1, 10, 60, 300, 900, 1800, 3600, 86400]


def test_lengths_that_do_not_divide_an_hour_are_refused(problems: Problems) -> None:
    """16m, 45m and 70s do not divide an hour, 2h and 12h not the local day: each refused."""
    text = GATEWAY + "emissions:\n  intervals: [2h, 16m, 45m, 70s, 12h]\n" + METER
    accepted = "must divide an hour (1m, 5m, 15m, 30m, 1h ...) or be 1d"
    assert problems(text) == [
        f"agent.yaml:9:15: emissions.intervals[0]: {accepted} (got 2h)",
        f"agent.yaml:9:19: emissions.intervals[1]: {accepted} (got 16m)",
        f"agent.yaml:9:24: emissions.intervals[2]: {accepted} (got 45m)",
        f"agent.yaml:9:29: emissions.intervals[3]: {accepted} (got 70s)",
        f"agent.yaml:9:34: emissions.intervals[4]: {accepted} (got 12h)",
    ]


def test_an_unknown_factor_set_lists_the_shipped_ones(problems: Problems) -> None:
    """A factor set that is not shipped gets a did-you-mean and the list."""
    text = GATEWAY + "emissions:\n  factor_set: cn_mee_2022\n" + METER
    assert problems(text) == [
        "agent.yaml:9:15: emissions.factor_set: unknown factor set 'cn_mee_2022' "
        "(did you mean 'cn-mee-2022'?); known: cn-mee-2021, cn-mee-2022, cn-mee-2023, "
        "cn-carbon-market-2021, cn-carbon-market-2022"
    ]


def test_the_grid_follows_the_region_by_default(load: Load) -> None:
    """Without emissions.grid, a Chengdu gateway loads: its province has a factor."""
    assert load(GATEWAY + METER).config.emissions.grid is None


def test_a_region_without_provincial_factor_is_never_silently_national(problems: Problems) -> None:
    """A Shenzhen gateway must say emissions.grid: national; nothing falls back on its own."""
    text = GATEWAY.replace('"510100"', '"440300"') + METER
    assert problems(text) == [
        "agent.yaml:4:16: gateway.region_code: no provincial grid factor for region 440300 "
        "in cn-mee-2022; set emissions.grid: national if your programme prescribes the "
        "national factor"
    ]


def test_the_national_grid_can_be_chosen_explicitly(load: Load) -> None:
    """emissions.grid: national is accepted for any region."""
    text = GATEWAY.replace('"510100"', '"440300"') + "emissions:\n  grid: national\n" + METER
    assert load(text).config.emissions.grid == "national"


def test_a_grid_contradicting_the_region_names_both(problems: Problems) -> None:
    """Chongqing's grid for a Chengdu gateway would quadruple its CO2: an error."""
    text = GATEWAY + "emissions:\n  grid: chongqing\n" + METER
    assert problems(text) == [
        "agent.yaml:9:9: emissions.grid: chongqing contradicts gateway.region_code 510100, "
        "which is in sichuan"
    ]


def test_an_unknown_grid_lists_the_known_ones(problems: Problems) -> None:
    """A misspelt province is suggested."""
    text = GATEWAY + "emissions:\n  grid: sichaun\n" + METER
    assert problems(text) == [
        "agent.yaml:9:9: emissions.grid: unknown grid 'sichaun' (did you mean 'sichuan'?); "
        "known: national, sichuan, chongqing, national_excl_market_nonfossil, national_fossil"
    ]


def test_rules_name_existing_devices_and_one_limit(problems: Problems) -> None:
    """A rule watches a known device and has exactly one of above/below."""
    text = (
        GATEWAY
        + RULES_DEVICES
        + (
            "  - {name: r1, device: incommer, quantity: power_kw}\n"
            "  - {name: r2, quantity: co2_kg_today, above: 1, below: 0}\n"
        )
    )
    assert problems(text) == [
        "agent.yaml:16:5: rules[0]: a rule needs exactly one of above: or below:",
        "agent.yaml:16:24: rules[0].device: unknown device 'incommer' (did you mean 'incomer'?); "
        "known: incomer, boiler",
        "agent.yaml:17:5: rules[1]: a rule needs exactly one of above: or below: (found both)",
    ]


def test_hysteresis_lies_on_the_clearing_side(problems: Problems) -> None:
    """clear_below goes with above and is not above it; clear_above mirrors it."""
    text = (
        GATEWAY
        + RULES_DEVICES
        + (
            "  - {name: r1, quantity: demand_15m_kw, above: 800, clear_below: 820}\n"
            "  - {name: r2, quantity: demand_15m_kw, below: 10, clear_below: 5}\n"
        )
    )
    assert problems(text) == [
        "agent.yaml:16:66: rules[0].clear_below: must be at most above: 800 (got 820)",
        "agent.yaml:17:52: rules[1].clear_below: clear_below goes with above: "
        "(it is the level where the alarm clears)",
    ]


def test_a_modbus_write_needs_a_modbus_device_and_one_address(problems: Problems) -> None:
    """The stack light is written over Modbus, to one coil or one register."""
    text = (
        GATEWAY
        + RULES_DEVICES
        + (
            "  - name: r1\n"
            "    quantity: power_kw\n"
            "    above: 1\n"
            "    action: {modbus_write: {device: boiler, coil: 5, register: 6, value: true}}\n"
            "  - name: r2\n"
            "    quantity: power_kw\n"
            "    above: 1\n"
            "    action: {modbus_write: {device: incomer, coil: 5, value: 1}}\n"
        )
    )
    assert problems(text) == [
        "agent.yaml:19:14: rules[0].action.modbus_write: needs exactly one of coil: or register:",
        "agent.yaml:19:37: rules[0].action.modbus_write.device: 'boiler' speaks opcua; "
        "modbus_write needs a modbus_tcp or modbus_rtu device",
        "agent.yaml:23:62: rules[1].action.modbus_write.value: a coil takes true or false (got 1)",
    ]


def test_an_opcua_write_needs_an_opcua_device_and_exactly_one_write(problems: Problems) -> None:
    """A PLC flag is written over OPC UA to an opcua device; an action is one write."""
    text = (
        GATEWAY
        + RULES_DEVICES
        + (
            "  - name: r1\n"
            "    quantity: power_kw\n"
            "    above: 1\n"
            '    action: {opcua_write: {device: incomer, node: "ns=2;s=Alarm", value: true}}\n'
            "  - name: r2\n"
            "    quantity: power_kw\n"
            "    above: 1\n"
            "    action: {}\n"
            "  - name: r3\n"
            "    quantity: power_kw\n"
            "    above: 1\n"
            "    action:\n"
            '      opcua_write: {device: boiler, node: "ns=2;s=Alarm", value: 1}\n'
            "      modbus_write: {device: incomer, coil: 5, value: true}\n"
            "  - name: r4\n"
            "    quantity: power_kw\n"
            "    above: 1\n"
            '    action: {opcua_write: {device: boiler, node: "ns=2;s=Alarm", value: 2.5}}\n'
        )
    )
    assert problems(text) == [
        "agent.yaml:19:36: rules[0].action.opcua_write.device: 'incomer' speaks modbus_tcp; "
        "opcua_write needs an opcua device",
        "agent.yaml:23:13: rules[1].action: needs exactly one of modbus_write: or opcua_write:",
        "agent.yaml:28:7: rules[2].action: needs exactly one of modbus_write: or opcua_write: "
        "(found both)",
    ]


def test_a_wrong_check_digit_is_only_a_warning(load: Load) -> None:
    """The enterprise id's GB 32100 check digit is checked, but never blocks a start."""
    loaded = load(GATEWAY.replace("91510100MA6123456W", "91510100MA61234567") + METER)
    assert [str(w) for w in loaded.warnings] == [
        "agent.yaml:3:18: gateway.enterprise_id: check digit is '7' but GB 32100 gives 'W' "
        "for 91510100MA6123456: check the code for a typo"
    ]
    assert loaded.warnings[0].severity == "warning"


def test_plain_http_to_another_host_is_a_warning(load: Load) -> None:
    """The bearer token would cross the network in clear text."""
    loaded = load(GATEWAY.replace("https://central.example", "http://central.example") + METER)
    assert [str(w) for w in loaded.warnings] == [
        "agent.yaml:7:8: sync.url: plain http to central.example: the token would travel "
        "in clear text; use https://"
    ]


def test_plain_http_to_loopback_is_fine(load: Load) -> None:
    """A local receiver (the demo, tests) needs no TLS."""
    loaded = load(GATEWAY.replace("https://central.example", "http://127.0.0.1:8080") + METER)
    assert loaded.warnings == []


def test_a_poll_slower_than_the_shortest_interval_is_a_warning(load: Load) -> None:
    """Polling every 2m leaves 1m intervals without a reading of their own."""
    loaded = load(GATEWAY + METER + "    poll: 2m\n")
    assert [str(w) for w in loaded.warnings] == [
        "agent.yaml:14:11: devices[0].poll: poll 2m is longer than the shortest interval 1m: "
        "those intervals get no reading of their own"
    ]


def test_path_fields_expand_environment_variables(load: Load) -> None:
    """${VAR} and ${VAR:-default} are expanded in path fields after validation."""
    text = GATEWAY + (
        "  token_file: ${CREDENTIALS_DIRECTORY}/sync-token\n"
        "buffer:\n  path: ${STATE_DIRECTORY:-/var/lib/edge-agent}/buffer.db\n" + METER
    )
    config = load(text, environ={"CREDENTIALS_DIRECTORY": "/run/credentials/edge-agent"}).config
    assert config.sync.token_file == "/run/credentials/edge-agent/sync-token"
    assert config.buffer.path == "/var/lib/edge-agent/buffer.db"


def test_opcua_files_expand_environment_variables(load: Load) -> None:
    """Certificates and password files of OPC UA devices are path fields too."""
    text = GATEWAY + (
        "devices:\n  - name: boiler\n"
        "    opcua: {endpoint: 'opc.tcp://h:4840', certificate: '${CERTS}/client.der',\n"
        "            private_key: '${CERTS}/client.pem'}\n"
        "    points: [{name: gas_m3, node: 'ns=2;s=Gas', kind: counter}]\n"
    )
    device = load(text, environ={"CERTS": "/etc/edge-agent/pki"}).config.devices[0]
    assert device.opcua.certificate == "/etc/edge-agent/pki/client.der"
    assert device.opcua.private_key == "/etc/edge-agent/pki/client.pem"


def test_an_opcua_certificate_needs_its_key(problems: Problems) -> None:
    """A certificate without its private key cannot sign: refused at the certificate."""
    text = GATEWAY + (
        "devices:\n  - name: boiler\n"
        "    opcua: {endpoint: 'opc.tcp://h:4840', certificate: /etc/pki/client.der}\n"
        "    points: [{name: gas_m3, node: 'ns=2;s=Gas', kind: counter}]\n"
    )
    (problem,) = problems(text)
    assert problem.endswith(
        "certificate needs its private_key too (or neither: the agent makes its own)"
    )


def test_an_unset_variable_is_a_warning_where_no_path_is_opened(load: Load) -> None:
    """Without require_env (probe, status: they open none of these paths) an unset variable
    is a warning, the text left as written; the hint says how to check as under systemd."""
    text = GATEWAY + "  token_file: ${CREDENTIALS_DIRECTORY}/sync-token\n" + METER
    loaded = load(text, environ={})
    assert loaded.config.sync.token_file == "${CREDENTIALS_DIRECTORY}/sync-token"
    assert [str(w) for w in loaded.warnings] == [
        "agent.yaml:8:15: sync.token_file: ${CREDENTIALS_DIRECTORY} is not set "
        "(systemd sets it with LoadCredential=; `edge-agent check --for-systemd` checks the "
        "file as the service will see it)"
    ]


def test_an_unset_variable_is_an_error_for_the_daemon(problems: Problems) -> None:
    """With require_env, the daemon refuses to start on a path that cannot exist."""
    text = GATEWAY + "  token_file: ${TOKEN_DIR}/sync-token\n" + METER
    assert problems(text, require_env=True, environ={}) == [
        "agent.yaml:8:15: sync.token_file: ${TOKEN_DIR} is not set (set it in the environment, "
        "or give a default: ${TOKEN_DIR:-value})"
    ]


def test_an_energy_counter_needs_a_unit_of_its_carrier(problems: Problems) -> None:
    """A counter in kW (a power unit) cannot become kWh, tce and CO2: an error at load."""
    text = GATEWAY + METER.replace("unit: kWh", "unit: kW")
    assert problems(text) == [
        "agent.yaml:13:45: devices[0].energy.counter: 'energy_kwh' counts in 'kW', not a unit "
        "of electricity (kWh, Wh, MWh): set the point's unit"
    ]


def test_checks_report_beside_schema_errors_elsewhere(problems: Problems) -> None:
    """A schema error in one device does not hide a bad interval or another device's point."""
    text = GATEWAY + (
        "emissions:\n"
        "  intervals: [1m, 7m]\n"
        "devices:\n"
        "  - name: broken\n"
        "    modbus_tcp: {host: 10.0.0.1, port: 0}\n"
        "    points: [{name: energy_kwh, address: 0, type: uint32, kind: counter}]\n"
        "  - name: meter\n"
        "    modbus_tcp: {host: 10.0.0.2}\n"
        "    points: [{name: pf, address: 4, type: int16, word_order: little}]\n"
    )
    assert problems(text) == [
        "agent.yaml:9:19: emissions.intervals[1]: must divide an hour "
        "(1m, 5m, 15m, 30m, 1h ...) or be 1d (got 7m)",
        "agent.yaml:12:40: devices[0].modbus_tcp.port: must be at least 1 (got 0)",
        "agent.yaml:16:50: devices[1].points[0].word_order: word_order is meaningless "
        "with type: int16",
    ]


def test_a_rule_naming_a_broken_device_waits_for_it(problems: Problems) -> None:
    """A device that did not validate is not called unknown; the rule's own mistakes still show."""
    text = (
        GATEWAY
        + RULES_DEVICES.replace("{host: 10.0.0.1}", "{host: 10.0.0.1, unit: 300}")
        + ("  - {name: r1, device: incomer, quantity: power_kw, above: 5, clear_below: 6}\n")
    )
    assert problems(text) == [
        "agent.yaml:10:40: devices[0].modbus_tcp.unit: must be at most 255 (got 300)",
        "agent.yaml:16:76: rules[0].clear_below: must be at most above: 5 (got 6)",
    ]


def test_a_rule_naming_a_valid_device_is_checked_beside_a_broken_one(problems: Problems) -> None:
    """A modbus_write to a valid OPC UA device is refused even while another device is broken."""
    text = (
        GATEWAY
        + RULES_DEVICES.replace("{host: 10.0.0.1}", "{host: 10.0.0.1, unit: 300}")
        + (
            "  - name: r1\n"
            "    quantity: power_kw\n"
            "    above: 1\n"
            "    action: {modbus_write: {device: boiler, coil: 5, value: true}}\n"
        )
    )
    assert problems(text) == [
        "agent.yaml:10:40: devices[0].modbus_tcp.unit: must be at most 255 (got 300)",
        "agent.yaml:19:37: rules[0].action.modbus_write.device: 'boiler' speaks opcua; "
        "modbus_write needs a modbus_tcp or modbus_rtu device",
    ]


def test_a_device_with_an_unknown_profile_still_has_its_own_points_checked(
    problems: Problems,
) -> None:
    """Own points are checked; the counter, maybe a profile point, waits for the profile."""
    text = GATEWAY + (
        "devices:\n"
        "  - name: incomer\n"
        "    profile: eastron-sdm360\n"
        "    modbus_tcp: {host: 10.0.0.1}\n"
        "    points: [{name: pf, address: 4, type: int16, word_order: little}]\n"
        "    energy: {carrier: electricity, counter: import_kwh}\n"
    )
    assert problems(text) == [
        "agent.yaml:10:14: devices[0].profile: unknown profile 'eastron-sdm360' "
        f"(did you mean 'eastron-sdm630'?); known: {', '.join(list_profiles())}",
        "agent.yaml:12:50: devices[0].points[0].word_order: word_order is meaningless "
        "with type: int16",
    ]


def test_the_grid_is_checked_while_the_gateway_is_broken(problems: Problems) -> None:
    """An unknown grid is reported beside a gateway error; the region match waits for it."""
    text = GATEWAY.replace("id: gw1", "id: gw1\n  timezone: Asia/Chengdu") + (
        "emissions:\n  grid: sichaun\n" + METER
    )
    assert problems(text) == [
        "agent.yaml:3:13: gateway.timezone: unknown time zone 'Asia/Chengdu' "
        "(for example Asia/Shanghai)",
        "agent.yaml:10:9: emissions.grid: unknown grid 'sichaun' (did you mean 'sichuan'?); "
        "known: national, sichuan, chongqing, national_excl_market_nonfossil, national_fossil",
    ]


def test_an_unset_variable_is_reported_beside_schema_errors(problems: Problems) -> None:
    """The daemon's missing ${VAR} shows in the same run as a device's schema error."""
    text = GATEWAY + "  token_file: ${TOKEN_DIR}/sync-token\n" + METER + "    poll: 5\n"
    assert problems(text, require_env=True, environ={}) == [
        "agent.yaml:8:15: sync.token_file: ${TOKEN_DIR} is not set (set it in the environment, "
        "or give a default: ${TOKEN_DIR:-value})",
        "agent.yaml:15:11: devices[0].poll: must be a duration like 500ms, 5s, 2m or 24h "
        "(got 5, a number)",
    ]


def test_devices_on_one_serial_port_must_share_protocol_and_settings(problems, load) -> None:
    """A second device on /dev/ttyUSB0 speaking another protocol is refused at its link; a
    Modbus RTU meter at another speed is accepted (the driver switches the port for it)
    with a warning that it slows the bus. DL/T 645 meters on one port share its speed."""
    text = GATEWAY + (
        "devices:\n"
        "  - name: a\n"
        "    modbus_rtu: {port: /dev/ttyUSB0, baudrate: 9600, unit: 1}\n"
        "    points: [{name: e, address: 0, type: uint32, unit: kWh, kind: counter}]\n"
        "  - name: b\n"
        "    modbus_rtu: {port: /dev/ttyUSB0, baudrate: 19200, parity: E, unit: 2}\n"
        "    points: [{name: e, address: 0, type: uint32, unit: kWh, kind: counter}]\n"
    )
    (warning,) = [str(w) for w in load(text).warnings]
    assert warning.startswith("agent.yaml:13:17: devices[1].modbus_rtu: /dev/ttyUSB0 runs at ")
    assert "9600 N1 for 'a' (devices[0]) and at 19200 E1 for this meter" in warning
    assert "slows the bus" in warning
    dlt645 = (
        "  - name: c\n"
        "    dlt645: {port: /dev/ttyUSB0, address: '000012345678'}\n"
        "    points: [{name: e, di: '00010000', unit: kWh, kind: counter}]\n"
    )
    (problem,) = [p for p in problems(text + dlt645) if "warning" not in p and "runs at" not in p]
    assert problem.startswith("agent.yaml:16:13: devices[2].dlt645: /dev/ttyUSB0 is shared")
    assert "modbus_rtu 9600 N1" in problem and "got dlt645 2400 E1" in problem
    two = (
        GATEWAY
        + "devices:\n"
        + dlt645
        + dlt645.replace("c\n", "d\n", 1).replace(
            "'000012345678'}", "'000012345679', baudrate: 9600}"
        )
    )
    (problem,) = problems(two)
    assert "dlt645 2400 E1" in problem and "got dlt645 9600 E1" in problem


def test_every_problem_of_a_serial_line_is_reported_at_once(problems) -> None:
    """Another speed (a warning) and a unit id already taken are both said, and a device
    with an error elsewhere still counts on its line: one run lists all of it."""
    text = GATEWAY + (
        "devices:\n"
        "  - name: a\n"
        "    modbus_rtu: {port: /dev/ttyUSB0, baudrate: 9600, unit: 3}\n"
        "    points: [{name: e, address: 0, type: uint32, unit: kWh, kind: counter}]\n"
        "  - name: b\n"
        "    modbus_rtu: {port: /dev/ttyUSB0, baudrate: 19200, unit: 3}\n"
        "    points: [{name: e, address: 0, type: uint32, unit: kWh, kind: counter}]\n"
        "  - name: c\n"
        "    modbus_rtu: {port: /dev/ttyUSB0, baudrate: 9600, unit: 3}\n"
        "    points: [{name: e, adress: 0, type: uint32, unit: kWh, kind: counter}]\n"
    )
    found = problems(text)
    assert [p.split(": ", 2)[:2] for p in found] == [
        ["agent.yaml:13:17", "devices[1].modbus_rtu"],
        ["agent.yaml:13:61", "devices[1].modbus_rtu.unit"],
        ["agent.yaml:16:60", "devices[2].modbus_rtu.unit"],
        ["agent.yaml:17:14", "devices[2].points[0]"],
        ["agent.yaml:17:24", "devices[2].points[0].adress"],
    ]
    assert found[1].endswith("'a' (devices[0]) already has unit 3 on /dev/ttyUSB0")
    assert found[2].endswith("'a' (devices[0]) already has unit 3 on /dev/ttyUSB0")


def test_reverse_needs_both_directions_to_swap(problems, load: Load) -> None:
    """reverse: true on a meter read for import only cannot swap anything: an error, said
    once; another import_* counter without its export_* is only a warning."""
    text = GATEWAY + (
        "devices:\n"
        "  - name: a\n"
        "    modbus_tcp: {host: 10.0.0.1}\n"
        "    reverse: true\n"
        "    points:\n"
        "      - {name: import_kwh, address: 0, type: uint32, unit: kWh, kind: counter}\n"
        "    energy: {carrier: electricity, counter: import_kwh}\n"
    )
    assert problems(text) == [
        "agent.yaml:11:14: devices[0].reverse: reverse: true swaps import_* and export_* "
        "points, but 'import_kwh' has no counterpart here: add the meter's other direction "
        "register (e.g. export_kwh)"
    ]
    more = (
        "      - {name: export_kwh, address: 2, type: uint32, unit: kWh, kind: counter}\n"
        "      - {name: import_kvarh, address: 4, type: uint32, unit: kvarh, kind: counter}\n"
    )
    loaded = load(text.replace("    energy:", more + "    energy:"))
    assert [str(w) for w in loaded.warnings] == [
        "agent.yaml:11:14: devices[0].reverse: 'import_kvarh' has no 'export_kvarh' to swap "
        "with: on this reversed meter it keeps reading the register it names"
    ]


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        # two DL/T 645 devices with the same address on one port: the second is named
        ("000012345678", "'a' (devices[0]) already has address 000012345678 on /dev/ttyUSB1"),
        # AAAAAAAAAAAA makes every meter answer: refused when the port has more devices
        ("AAAAAAAAAAAA", "wildcard address answers for every meter on /dev/ttyUSB1"),
    ],
    ids=["one-address-twice", "wildcard-not-alone"],
)
def test_each_meter_on_a_line_needs_its_own_address(problems, first, expected) -> None:
    """Meters on one serial line are told apart by address: one each, no wildcard."""
    meter = (
        "  - name: %s\n"
        "    dlt645: {port: /dev/ttyUSB1, address: '%s'}\n"
        "    profile: dlt645-2007-energy\n"
    )
    text = GATEWAY + "devices:\n" + meter % ("a", first) + meter % ("b", "000012345678")
    (problem,) = problems(text)
    assert expected in problem


def test_a_rule_watches_a_computed_figure_or_a_point_of_its_device(problems: Problems) -> None:
    """Unknown quantities are named with a suggestion; energy figures need an energy counter,
    interval energy a device, and a point a device that has it."""
    text = (
        GATEWAY
        + RULES_DEVICES
        + (
            "  - {name: r1, device: incomer, quantity: energy_kw, above: 1}\n"
            "  - {name: r2, device: incomer, quantity: demand_15m_kw, above: 1}\n"
            "  - {name: r3, quantity: co2_kg_tday, above: 1}\n"
            "  - {name: r4, quantity: energy_interval, above: 1}\n"
            "  - {name: r5, device: incomer, quantity: energy_kwh, above: 1}\n"
        )
    )
    assert problems(text) == [
        "agent.yaml:16:43: rules[0].quantity: 'energy_kw' is neither a computed figure nor a "
        "point of 'incomer' (did you mean 'energy_kwh'?)",
        "agent.yaml:17:43: rules[1].quantity: demand_15m_kw is computed from an energy counter, "
        "and 'incomer' has no energy:",
        "agent.yaml:18:26: rules[2].quantity: unknown site quantity 'co2_kg_tday' "
        "(did you mean 'co2_kg_today'?); a point needs device:",
        "agent.yaml:19:26: rules[3].quantity: energy_interval needs device: "
        "(carriers do not add up)",
    ]


def test_demand_rules_need_a_shortest_interval_dividing_a_quarter_hour(
    problems: Problems,
) -> None:
    """Block demand is summed from the shortest intervals: 10m cannot make 15m blocks."""
    text = (
        GATEWAY
        + RULES_DEVICES
        + "  - {name: r1, quantity: demand_15m_kw, above: 1}\n"
        + "emissions: {intervals: [10m, 1h]}\n"
    )
    assert problems(text) == [
        "agent.yaml:16:26: rules[0].quantity: demand_15m_kw is built from the shortest "
        "interval, which must divide 15 minutes (got 10m): add 1m, 5m or 15m to "
        "emissions.intervals",
    ]
    # an interval under 1s is refused where it is written, and leaves the rule alone
    assert problems(text.replace("[10m, 1h]", "[0s]")) == [
        "agent.yaml:17:25: emissions.intervals[0]: must be at least 1s (got 0ms)",
    ]


def test_energy_from_power_needs_a_rate_of_the_carrier(problems: Problems) -> None:
    """power: names a gauge in a rate unit of the carrier; energy takes one of counter: or
    power:, and says the counter is the better one when both are written."""
    power = "      - {name: p, address: 2, type: float32, unit: m3/h}\n"
    text = GATEWAY + METER.replace("kind: counter}\n", "kind: counter}\n" + power).replace(
        "counter: energy_kwh}", "power: p}"
    )
    assert problems(text) == [
        "agent.yaml:14:43: devices[0].energy.power: 'p' is in 'm3/h', not a rate of "
        "electricity (kW, W, MW): set the point's unit"
    ]
    both = text.replace("power: p}", "counter: energy_kwh, power: p}")
    assert problems(both) == [
        "agent.yaml:14:5: devices[0].energy: energy needs counter: (a cumulative total) or "
        "power: (a rate) (found both: the counter is exact, drop power:)"
    ]
    neither = text.replace("power: p}", "max_rate: 5}")
    assert problems(neither) == [
        "agent.yaml:14:5: devices[0].energy: energy needs counter: (a cumulative total) or "
        "power: (a rate)"
    ]
    counted = text.replace("power: p}", "power: energy_kwh}")
    assert problems(counted) == [
        "agent.yaml:14:43: devices[0].energy.power: 'energy_kwh' is a counter: write it as "
        "counter: (power: integrates a rate)"
    ]


def test_a_factor_override_has_a_figure_and_a_source(problems: Problems) -> None:
    """An override names its source (required by the model) and at least one figure; water
    takes no CO2 figure; replacing the grid factor is legal but warned about."""
    head = GATEWAY + METER + "emissions:\n  overrides:\n"
    assert problems(head + "    diesel: {tce: 1.45}\n") == [
        "agent.yaml:16:5: emissions.overrides.diesel: missing required field 'source'",
    ]
    text = (
        head
        + "    natural_gas: {source: supplier analysis}\n"
        + "    water: {co2: 0.3, source: guess}\n"
    )
    assert problems(text) == [
        "agent.yaml:16:5: emissions.overrides.natural_gas: an override needs co2: or tce: "
        "(or both)",
        "agent.yaml:17:13: emissions.overrides.water.co2: water carries no CO2: remove co2:",
    ]


def test_an_override_travels_with_its_source_into_the_records(tmp_path) -> None:
    """natural_gas co2 2.05 from the supplier's analysis: 100 m3 give 205 kg CO2, the
    factor says where 2.05 comes from; the tce stays GB/T 2589's 1.2143."""
    from agent.carbon import interval_record
    from agent.intervals import ClosedInterval
    from config.factors import load_factor_set
    from config.models import FactorOverride

    own = {"natural_gas": FactorOverride(co2=2.05, source="supplier NCV analysis 2026-03")}
    factors = load_factor_set("cn-mee-2022").overridden(own)
    interval = ClosedInterval(1_789_999_200.0, 1_789_999_260.0, 100.0, 1.0, "good")
    r = interval_record("boiler", "natural_gas", "m3", interval, factors, "sichuan", TZ).to_json()
    assert r["co2_kg"] == 205.0 and r["tce_kg"] == 121.43
    assert r["factor"] == {
        "id": "plant_natural_gas",
        "value": 2.05,
        "unit": "kgCO2/m3",
        "source": "supplier NCV analysis 2026-03",
        "year": None,
        "verification": "plant",
    }


def test_litres_of_a_liquid_fuel_need_a_sourced_density(problems: Problems, load: Load) -> None:
    """A diesel meter counting litres is refused until energy.density gives kg per litre
    with its source; a density where no litres are metered is a warning."""
    litres = GATEWAY + METER.replace("unit: kWh", "unit: L").replace(
        "carrier: electricity", "carrier: diesel"
    )
    assert problems(litres) == [
        "agent.yaml:13:13: devices[0].energy: 'energy_kwh' meters diesel in L, but its factors "
        "are per kg: add density: {value: <kg per litre>, source: <where the figure comes from>}"
    ]
    sourced = litres.replace(
        "counter: energy_kwh}", "counter: energy_kwh, density: {value: 0.84, source: lab 2026}}"
    )
    assert load(sourced).config.devices[0].energy.density.value == 0.84
    unsourced = sourced.replace(", source: lab 2026", "")
    assert any("density: missing required field 'source'" in p for p in problems(unsourced))
    needless = GATEWAY + METER.replace(
        "counter: energy_kwh}", "counter: energy_kwh, density: {value: 0.84, source: lab}}"
    )
    assert [str(w) for w in load(needless).warnings] == [
        "agent.yaml:13:57: devices[0].energy.density: density is used only for a liquid fuel "
        "metered in L or m3; 'energy_kwh' is in kWh (electricity): remove it"
    ]


def test_a_shipped_figure_nobody_confirmed_is_used_with_a_warning(load: Load) -> None:
    """The recalled raw-coal CO2 factor and Sichuan's single-source 2021 grid factor are
    used with a warning naming the document to check; an override with a source ends it."""
    coal = (
        GATEWAY
        + "emissions: {factor_set: cn-mee-2021}\n"
        + METER.replace("unit: kWh", "unit: kg").replace("electricity", "raw_coal")
        + "  - name: grid\n    modbus_tcp: {host: 10.0.0.2}\n"
        "    points: [{name: kwh, address: 0, type: uint32, unit: kWh, kind: counter}]\n"
        "    energy: {carrier: electricity, counter: kwh}\n"
    )
    warnings = [str(w) for w in load(coal).warnings]
    assert len(warnings) == 2
    assert (
        "devices[0].energy.carrier: the ndrc_raw_coal factor 1.9003 kgCO2/kg is recalled"
        in (warnings[0])
    )
    assert "set emissions.overrides.raw_coal.co2 with the figure and its source" in warnings[0]
    assert "devices[1].energy.carrier: the cn_sichuan_2021 factor 0.1255 kgCO2/kWh" in warnings[1]
    assert "公告2024年第12号" in warnings[1]
    overridden = coal.replace(
        "{factor_set: cn-mee-2021}",
        "{factor_set: cn-mee-2021, overrides: {raw_coal: {co2: 1.95, source: lab 2026}}}",
    )
    assert [w.path for w in load(overridden).warnings] == ["devices[1].energy.carrier"]
