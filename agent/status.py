"""`edge-agent status`: what the buffer says, read-only, safe while the daemon runs."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from agent.rules import RULE_KEY
from buffer import Store
from config import LoadedConfig


def _when(ts: float | None, tz: ZoneInfo) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, tz).isoformat(sep=" ", timespec="seconds")


def status(loaded: LoadedConfig, *, as_json: bool) -> int:
    config = loaded.config
    tz = ZoneInfo(config.gateway.timezone)
    try:
        store = Store(config.buffer.path, readonly=True)
        counters = store.counters()
        backlog = store.backlog()
        last = store.last_batch()
    except sqlite3.Error as exc:
        print(f"{config.buffer.path}: cannot read the buffer ({exc}); has the agent run yet?")
        return 1
    store.close()
    devices = {}
    for device in config.devices:
        counter = device.energy.counter if device.energy else None
        state = counters.get(f"{device.name}/{counter}") if counter else None
        sample = state["last"] if state and state.get("last") else None
        devices[device.name] = {
            "counter": counter,
            "last_sample": sample[0] if sample else None,
            "counter_value": sample[1] if sample else None,
        }
    rules = {}
    for rule in config.rules:
        state = counters.get(RULE_KEY + rule.name) or {}
        rules[rule.name] = {"raised": bool(state.get("raised")), "since": state.get("raised_at")}
    report = {
        "gateway": config.gateway.id,
        "devices": devices,
        "rules": rules,
        "backlog": backlog,
        "last_batch": last,
    }
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    print(f"gateway {config.gateway.id}, buffer {config.buffer.path}")
    print(f"{'device':<20}{'counter':<14}{'value':>14}  last committed sample")
    for name, d in devices.items():
        value = f"{d['counter_value']:.3f}" if d["counter_value"] is not None else "-"
        print(f"{name:<20}{d['counter'] or '-':<14}{value:>14}  {_when(d['last_sample'], tz)}")
    for name, r in rules.items():
        print(f"rule {name}: " + (f"RAISED since {_when(r['since'], tz)}" if r["raised"] else "ok"))
    age = time.time() - backlog["oldest"] if backlog["oldest"] else None
    print(
        f"backlog: {backlog['intervals']} intervals, {backlog['events']} events"
        + (f", oldest {age / 60:.0f} min old" if age is not None else "")
    )
    _print_buffer_use(backlog, config.buffer.max_size)
    if last:
        print(
            f"last batch: #{last['seq']} {last['status']} at {_when(last['finished'], tz)}"
            + (f" ({last['reason']})" if last["reason"] else "")
        )
    else:
        print("last batch: none yet")
    return 0


def _print_buffer_use(backlog: dict, max_size: int) -> None:
    """How full the buffer is and what a full buffer has cost (see buffer._room)."""
    print(
        f"buffer: {backlog['size'] / 1e6:.1f} MB of {max_size / 1e6:g} MB;"
        f" dropped when full: {backlog['dropped_samples']} raw samples,"
        f" {backlog['dropped_synced']} synced records"
    )
