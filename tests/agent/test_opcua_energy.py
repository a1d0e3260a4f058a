"""OPC UA in the whole path: a subscription's counter changes become intervals, energy kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.daemon import Agent
from agent.probe import probe
from config.loader import load_config
from drivers.opcua.simulator import LoadCurve, MeterServer, node_id
from tests.fixtures.plant import wait_for_async

pytestmark = pytest.mark.timeout(60)
CONFIG = """\
gateway: {id: gw, enterprise_id: 91510100MA6123456W, region_code: "510100", industry_code: C3011}
buffer: {path: %(dir)s/buffer.db, raw_retention: 1h}
sync: {url: "http://127.0.0.1:9/api/v1/batches"}
emissions: {intervals: [2s]}
devices:
  - name: boiler
    opcua: {endpoint: "%(endpoint)s", mode: subscribe, publishing_interval: 200ms,
            sampling_interval: 100ms}
    poll: 1s
    points:
      - {name: import_kwh, node: "%(node)s", unit: kWh, kind: counter}
    energy: {carrier: electricity, counter: import_kwh}
"""


async def test_subscribed_counter_changes_give_conserved_intervals(tmp_path: Path) -> None:
    """Every change between polls is counted: the intervals add up to what the meter advanced."""
    server = MeterServer(LoadCurve(base_kw=360.0, swing_kw=0.0))  # 0.01 kWh per 100 ms tick
    await server.start()
    path = tmp_path / "agent.yaml"
    path.write_text(
        CONFIG % {"dir": tmp_path, "endpoint": server.endpoint, "node": node_id("import_kwh")}
    )
    agent = Agent(load_config(path))
    await agent.start()

    async def enough() -> bool:  # what the asserts below want, once it is there
        with sqlite3.connect(tmp_path / "buffer.db") as db:
            (rows,) = db.execute("SELECT count(*) FROM intervals").fetchone()
            (samples,) = db.execute(
                "SELECT count(*) FROM samples WHERE point = 'import_kwh'"
            ).fetchone()
        return rows >= 3 and samples > 9 * 2

    try:
        await wait_for_async(enough, 9.0)  # within the 9 s the run once slept through
    finally:
        await agent.stop()
        await server.close()
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        rows = db.execute(
            "SELECT start, json_extract(body, '$.quantity') FROM intervals ORDER BY start"
        ).fetchall()
        samples = db.execute("SELECT count(*) FROM samples WHERE point = 'import_kwh'").fetchone()
    assert samples[0] > 9 * 2  # every change between polls reached the pipeline, not 1/s
    assert len(rows) >= 3
    starts = [r[0] for r in rows]
    assert starts == [starts[0] + 2 * k for k in range(len(starts))]
    for _, quantity in rows[1:]:  # whole intervals: 2 s at 360 kW is 0.2 kWh
        assert quantity == pytest.approx(0.2, abs=0.021)


async def test_browse_lists_the_servers_variables(tmp_path: Path, capsys) -> None:
    """probe --browse prints the node ids a technician copies into points."""
    server = MeterServer(LoadCurve(base_kw=10.0, swing_kw=0.0))
    await server.start()
    path = tmp_path / "agent.yaml"
    path.write_text(
        CONFIG % {"dir": tmp_path, "endpoint": server.endpoint, "node": node_id("import_kwh")}
    )
    try:
        code = await probe(load_config(path), "boiler", as_json=False, plan_only=False, browse="")
    finally:
        await server.close()
    out = capsys.readouterr().out
    assert code == 0
    assert node_id("import_kwh") in out and "NODE" in out.splitlines()[0]
