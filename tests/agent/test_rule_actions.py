"""The daemon around the rules: a stack light written over Modbus or OPC UA, a failing
output reported, a meter going offline and back online, each as an event in the buffer.

The agent runs under time travel (tests/fixtures/clock.py): the test moves the wall
clock and the polls due run at once; the outputs, meters and PLC answer in real time."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from asyncua import ua

from agent.daemon import Agent
from agent.demo import demo_config, demo_meters
from agent.health import DeviceStatus
from drivers.modbus.simulator import LoadCurve, MeterServer
from drivers.opcua import simulator as opcua_sim
from tests.fixtures.clock import Clock, ManualScheduler
from tests.fixtures.full_buffer import fill
from tests.fixtures.peers import StackLight, raw_server
from tests.fixtures.plant import config_text, events, start_agent

pytestmark = pytest.mark.timeout(60)


async def start(tmp_path: Path, text: str) -> Agent:
    """The agent in process on `text`, its jobs run by the test's clock."""
    return await start_agent(tmp_path, text, scheduler=ManualScheduler())


def press(agent: Agent) -> DeviceStatus:
    """The press line's device figures, which these tests take offline and back."""
    return agent.health.devices["press_line_2"]


async def test_a_raised_rule_switches_the_stack_light_on_once(tmp_path: Path, clock: Clock) -> None:
    """The incomer draws power: one alarm_raised event and an FC5 write of coil 5 = ON
    (0xFF00); a restart finds the rule raised: no second event, and the output is
    written once more (the write may not have happened before a crash)."""
    server = MeterServer(list(demo_meters().values()))
    light = StackLight()
    await server.start()
    try:
        async with raw_server(light) as port:
            text = config_text(tmp_path, server.port, port)
            agent = await start(tmp_path, text)
            await clock.run_until(agent, lambda: light.writes)
            await clock.run(agent, 1.0)
            await agent.stop()
            assert light.writes == [(5, 5, 0xFF00)]
            agent = await start(tmp_path, text)
            await clock.run_until(agent, lambda: len(light.writes) > 1)
            await clock.run(agent, 1.0)
            await agent.stop()
    finally:
        await server.stop()
    assert light.writes == [(5, 5, 0xFF00), (5, 5, 0xFF00)]
    raised = [e for e in events(tmp_path) if e[1] == "alarm_raised"]
    assert len(raised) == 1
    assert raised[0][0] == "main_incomer" and "rule incomer-on: power_kw" in raised[0][2]


async def test_a_refused_write_is_an_event_and_polling_goes_on(
    tmp_path: Path, clock: Clock
) -> None:
    """The output answers exception 0x04: an action_failed event names the output and
    the exception; the meters keep being polled."""
    server = MeterServer(list(demo_meters().values()))
    light = StackLight(refuse=True)
    await server.start()
    try:
        async with raw_server(light) as port:
            agent = await start(tmp_path, config_text(tmp_path, server.port, port))
            await clock.run_until(agent, lambda: agent.health.devices["main_incomer"].polls > 3)
            await clock.run(agent, 1.0)
            polls = agent.health.devices["main_incomer"].polls
            await clock.run(agent, 0.6)
            assert agent.health.devices["main_incomer"].polls > polls
            await agent.stop()
    finally:
        await server.stop()
    failed = [e for e in events(tmp_path) if e[1] == "action_failed"]
    assert len(failed) == 1
    assert "stack_light coil 5 = True" in failed[0][2] and "exception 0x04" in failed[0][2]


def opcua_config_text(tmp_path: Path, meters_port: int, plc: str, node: str) -> str:
    """The demo meters and a PLC on OPC UA whose `node` the incomer's power rule writes."""
    text = demo_config(meters_port, "http://127.0.0.1:9", tmp_path, interval=2, poll="250ms")
    return (
        text
        + "  - name: plc\n"
        + f"    opcua: {{endpoint: '{plc}', timeout: 500ms}}\n"
        + "    poll: 250ms\n"
        + f"    points: [{{name: lamp, node: '{opcua_sim.node_id('AlarmLamp')}'}}]\n"
        + "rules:\n"
        + "  - name: incomer-on\n"
        + "    device: main_incomer\n"
        + "    quantity: power_kw\n"
        + "    above: 1\n"
        + f"    action: {{opcua_write: {{device: plc, node: '{node}', value: true}}}}\n"
    )


def plc_server() -> opcua_sim.MeterServer:
    curve = LoadCurve(base_kw=1.0, swing_kw=0.0)
    return opcua_sim.MeterServer(curve, outputs={"AlarmLamp": False})


async def test_a_rule_writes_an_opcua_boolean_on_raise_and_clear(
    tmp_path: Path, clock: Clock
) -> None:
    """The incomer draws power: the PLC's Boolean node becomes true; the load stops (the
    counter kept where it was): the rule clears and the node is written false, a Boolean."""
    meters = demo_meters()
    server, plc = MeterServer(list(meters.values())), plc_server()
    await server.start()
    await plc.start()
    lamp = opcua_sim.node_id("AlarmLamp")
    try:
        agent = await start(tmp_path, opcua_config_text(tmp_path, server.port, plc.endpoint, lamp))
        seen: list[ua.Variant] = []

        async def lamp_is(value: bool) -> bool:
            seen.append(await plc.read("AlarmLamp"))
            return seen[-1].Value is value

        await clock.run_until(agent, lambda: lamp_is(True), within=10)
        incomer = meters["main_incomer"]
        now = time.time()
        incomer.curve = LoadCurve(0.0, 0.0, start_kwh=incomer.curve.energy_kwh(now), t0=now)
        await clock.run_until(agent, lambda: lamp_is(False), within=10)
        await agent.stop()
    finally:
        await plc.close()
        await server.stop()
    assert ua.Variant(True, ua.VariantType.Boolean) in seen
    assert seen[-1] == ua.Variant(False, ua.VariantType.Boolean)
    mine = [e[1] for e in events(tmp_path) if e[1].startswith(("alarm_", "action_"))]
    assert mine == ["alarm_raised", "alarm_cleared"]


async def test_a_write_to_a_missing_opcua_node_is_one_event_and_polling_goes_on(
    tmp_path: Path, clock: Clock
) -> None:
    """The node is not on the server: one action_failed naming the node and the server's
    BadNodeIdUnknown (not retried: it would fail the same way); the meters keep polling."""
    server, plc = MeterServer(list(demo_meters().values())), plc_server()
    await server.start()
    await plc.start()
    try:
        text = opcua_config_text(tmp_path, server.port, plc.endpoint, "ns=2;s=Line1.NoLamp")
        agent = await start(tmp_path, text)
        await clock.run_until(agent, lambda: any(e[1] == "action_failed" for e in events(tmp_path)))
        polls = agent.health.devices["main_incomer"].polls
        await clock.run(agent, 1.0)
        assert agent.health.devices["main_incomer"].polls > polls
        assert agent.health.devices["plc"].polls > 0
        await agent.stop()
    finally:
        await plc.close()
        await server.stop()
    failed = [e for e in events(tmp_path) if e[1] == "action_failed"]
    assert len(failed) == 1
    assert failed[0][0] == "plc"
    assert "could not write plc node ns=2;s=Line1.NoLamp = True" in failed[0][2]
    assert "BadNodeIdUnknown (node does not exist)" in failed[0][2]


async def test_a_meter_offline_and_back_gives_one_event_each(tmp_path: Path, clock: Clock) -> None:
    """A meter that stops answering: device_offline after 3 failed polls, device_online
    when it answers again."""
    meters = demo_meters()
    server = MeterServer(list(meters.values()))
    await server.start()
    try:
        text = demo_config(server.port, "http://127.0.0.1:9", tmp_path, interval=2, poll="250ms")
        agent = await start(tmp_path, text)
        await clock.run(agent, 0.8)
        meters["press_line_2"].offline = True
        await clock.run_until(agent, lambda: press(agent).failing_since >= 3)
        meters["press_line_2"].offline = False
        await clock.run_until(agent, lambda: press(agent).failing_since == 0)
        await clock.run(agent, 0.3)
        await agent.stop()
    finally:
        await server.stop()
    mine = [(e[1], e[2]) for e in events(tmp_path) if e[0] == "press_line_2"]
    assert [kind for kind, _ in mine] == ["device_offline", "device_online"]
    assert "offline after 3 failed polls" in mine[0][1]


async def test_a_meter_offline_across_a_restart_is_reported_offline_once(
    tmp_path: Path, clock: Clock
) -> None:
    """Offline before a stop and still offline after the start: no second device_offline
    (the flag is committed with the event); its first good poll gives one device_online."""
    meters = demo_meters()
    server = MeterServer(list(meters.values()))
    await server.start()
    try:
        text = demo_config(server.port, "http://127.0.0.1:9", tmp_path, interval=2, poll="250ms")
        agent = await start(tmp_path, text)
        meters["press_line_2"].offline = True
        await clock.run_until(
            agent, lambda: any(e[1] == "device_offline" for e in events(tmp_path))
        )
        await agent.stop()
        with sqlite3.connect(tmp_path / "buffer.db") as db:
            flag = db.execute(
                "SELECT state FROM counters WHERE key = '#offline/press_line_2'"
            ).fetchone()
        assert json.loads(flag[0]) == {"offline": True}
        agent = await start(tmp_path, text)
        await clock.run_until(agent, lambda: press(agent).failed_polls >= 2)
        assert press(agent).failed_polls >= 2  # failed polls after the start
        meters["press_line_2"].offline = False
        await clock.run_until(agent, lambda: press(agent).failing_since == 0)
        await clock.run(agent, 0.3)
        await agent.stop()
    finally:
        await server.stop()
    mine = [e[1] for e in events(tmp_path) if e[0] == "press_line_2"]
    assert mine == ["device_offline", "device_online"]
    assert [e[1] for e in events(tmp_path) if e[0] == "main_incomer"] == []


async def test_status_shows_which_rules_are_raised(tmp_path: Path, capsys, clock: Clock) -> None:
    """`edge-agent status` reads the rule states from the buffer: raised, and since when."""
    from agent.cli import main

    server = MeterServer(list(demo_meters().values()))
    light = StackLight()
    await server.start()
    try:
        async with raw_server(light) as port:
            agent = await start(tmp_path, config_text(tmp_path, server.port, port))
            await clock.run_until(agent, lambda: light.writes)
            await agent.stop()
    finally:
        await server.stop()
    assert main(["status", "-c", str(tmp_path / "agent.yaml"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rules"]["incomer-on"]["raised"] is True
    assert report["rules"]["incomer-on"]["since"] > 1_700_000_000


async def test_a_write_that_fails_while_the_buffer_is_full_is_still_an_event(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The buffer is at its cap with nothing it may drop (a long outage): the output's
    refusal is an action_failed event in the buffer all the same, as is the alarm that
    asked for the write, while the polls' other work is refused."""
    fill(tmp_path / "buffer.db", 200_000)
    server = MeterServer(list(demo_meters().values()))
    light = StackLight(refuse=True)
    await server.start()
    try:
        async with raw_server(light) as port:
            text = config_text(tmp_path, server.port, port)
            agent = await start(tmp_path, text.replace("buffer:\n", "buffer:\n  max_size: 200kB\n"))
            try:
                found = await clock.run_until(
                    agent, lambda: any(e[1] == "action_failed" for e in events(tmp_path))
                )
            finally:
                await agent.stop()
    finally:
        await server.stop()
    kinds = [kind for device, kind, _ in events(tmp_path) if device != "x"]  # x: the filling
    assert found and kinds.count("action_failed") == 1 and kinds.count("alarm_raised") == 1
    assert any("nothing more may be dropped" in r.getMessage() for r in caplog.records)
