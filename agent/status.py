"""`edge-agent status`: how the agent stands, safe while the daemon runs.

Two sources, both read-only: the buffer (counters, backlog, batches) and the
status file the daemon writes every 30 s and when it stops, in
/run/edge-agent under systemd (agent/lifecycle.py): live poll figures exist
only in the daemon's memory, and the file carries them out without a flash
write per poll and without needing the daemon's HTTP port to be enabled.
Where both know a figure (open alarms, the last acknowledged batch), the
buffer's is newer and wins: one report, one truth.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from agent import uplinks
from agent.lifecycle import SNAPSHOT_EVERY, find_snapshot
from agent.rules import RULE_KEY
from buffer import SCHEMA_VERSION, Store
from config.loader import LoadedConfig
from config.units import format_duration
from domain.errors import BufferTooNew


def _when(ts: float | None, tz: ZoneInfo) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, tz).isoformat(sep=" ", timespec="seconds")


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    age = max(0.0, now - ts)
    if age < 120:
        return f"{age:.0f} s ago"
    if age < 7200:
        return f"{age / 60:.0f} min ago"
    return f"{age / 3600:.1f} h ago"


def daemon_state(snap: dict | None, now: float, tz: ZoneInfo) -> str:
    """One line: is the daemon running, by the age of its status file."""
    if snap is None:
        return "daemon: no status file (not run since boot, or started less than 5 s ago)"
    if snap.get("stopped"):
        return f"daemon: stopped at {_when(snap['stopped'], tz)}"
    if now - snap["written"] <= 2 * SNAPSHOT_EVERY + 5:
        return f"daemon: running (pid {snap['pid']}, figures from {_ago(snap['written'], now)})"
    return (
        f"daemon: NOT RUNNING? its last status is from {_when(snap['written'], tz)} "
        "(check `systemctl status edge-agent`)"
    )


def status(loaded: LoadedConfig, *, as_json: bool) -> int:
    config = loaded.config
    tz = ZoneInfo(config.gateway.timezone)
    now = time.time()
    try:
        # an older file is read as it is; the backlog is each configured destination's
        store = Store(config.buffer.path, readonly=True, destinations=uplinks.ages(config))
        counters = store.counters()
        backlog = store.backlog()
        last = store.last_batch()
        acked = store.last_acked()
        version = store.version
    except BufferTooNew as exc:
        print(f"cannot read the buffer: {exc}")
        return 1
    except sqlite3.Error as exc:
        print(f"{config.buffer.path}: cannot read the buffer ({exc}); has the agent run yet?")
        return 1
    store.close()
    snap = find_snapshot(config.buffer.path)
    live = (snap or {}).get("devices", {})
    devices = {}
    for device in config.devices:
        counter = device.energy.counter if device.energy else None
        # a meter counted from power alone keeps its state under the power point's name
        key = counter or (device.energy.power if device.energy else None)
        state = counters.get(f"{device.name}/{key}") if key else None
        sample = state["last"] if state and state.get("last") else None
        devices[device.name] = {
            "counter": counter,
            "last_sample": sample[0] if sample else None,
            "counter_value": sample[1] if sample and counter else None,
            **live.get(device.name, {}),
        }
    rules = {}
    for rule in config.rules:
        state = counters.get(RULE_KEY + rule.name) or {}
        rules[rule.name] = {"raised": bool(state.get("raised")), "since": state.get("raised_at")}
    # each destination's figures; a status file written by an older daemon has the sync's only
    sent = (snap or {}).get("destinations") or {uplinks.CENTRAL: (snap or {}).get("sync")}
    sent = {name: _caught_up(figures, acked.get(name)) for name, figures in sent.items()}
    report = {
        "gateway": config.gateway.id,
        "daemon": daemon_state(snap, now, tz),
        "devices": devices,
        "rules": rules,
        "backlog": backlog,
        "buffer_version": version,
        "last_batch": last,
        "sync": sent.get(uplinks.CENTRAL),
        "destinations": sent,
        # the rules' states as committed, the same the rule lines show (not the status
        # file's count, which may be up to 30 s older than them)
        "open_alarms": sum(1 for r in rules.values() if r["raised"]),
        "problems": (snap or {}).get("problems", []),
    }
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    print(f"gateway {config.gateway.id}, buffer {config.buffer.path}")
    print(report["daemon"])
    print()
    head = f"{'device':<20}{'state':<11}{'last good poll':<16}{'errors':>12}{'quality':>9}"
    print(f"{head}{'counter':>16}  last committed")
    for name, d in devices.items():
        value = f"{d['counter_value']:.2f}" if d["counter_value"] is not None else "-"
        errors = f"{d['failed_polls']}/{d['polls']}" if "polls" in d else "-"
        quality = f"{d['good_points']}/{d['points']}" if d.get("points") else "-"
        good = _ago(d.get("last_good"), now) if "polls" in d else "-"
        print(
            f"{name:<20}{d.get('state', '-'):<11}{good:<16}{errors:>12}{quality:>9}"
            f"{value:>16}  {_when(d['last_sample'], tz)}"
        )
        if d.get("last_error") and d.get("state") != "ok":
            print(f"{'':<20}last error: {d['last_error']}")
    for name, r in rules.items():
        print(f"rule {name}: " + (f"RAISED since {_when(r['since'], tz)}" if r["raised"] else "ok"))
    print()
    _print_backlog(backlog, now)
    _print_buffer_use(backlog, config.buffer.max_size)
    if version < SCHEMA_VERSION:
        print(
            f"buffer schema: version {version}, migrated to {SCHEMA_VERSION} "
            "when the agent next starts"
        )
    for name, figures in sent.items():
        if figures:  # the central one as it always read; the others by name
            label = "last sync" if name == uplinks.CENTRAL else f"last delivery to {name}"
            success = _ago(figures["last_success"], now)
            link = ""
            if "connected" in figures:  # a standing connection (HJ 212)
                link = (
                    f"{'connected' if figures['connected'] else 'NOT CONNECTED'}, "
                    f"{figures['resends']} frames resent, {figures['refused']} requests "
                    "refused; "
                )
            print(
                f"{label}: {link}{figures['last_result']}, last success {success}"
                f", {figures['failures']} failed runs since start"
            )
    if last:
        whose = f" to {last['destination']}" if last.get("destination", "sync") != "sync" else ""
        print(
            f"last batch{whose}: #{last['seq']} {last['status']} at {_when(last['finished'], tz)}"
            + (f" ({last['reason']})" if last["reason"] else "")
        )
    else:
        print("last batch: none yet")
    print(f"open alarms: {report['open_alarms']}")
    for problem in report["problems"]:
        print(f"PROBLEM: {problem}")
    return 0


def _caught_up(figures: dict | None, acked: float | None) -> dict | None:
    """A destination's figures from the status file, brought up to what the buffer says
    happened since it was written: a batch acknowledged later is the last success (and the
    last result), so `last success never` never stands beside `last batch ... acked`."""
    if figures is None or acked is None or acked <= (figures.get("last_success") or 0.0):
        return figures
    caught = {**figures, "last_success": acked}
    if acked >= (figures.get("last_attempt") or 0.0):
        caught |= {"last_attempt": acked, "last_result": "acked"}
    return caught


def _print_backlog(backlog: dict, now: float) -> None:
    """The records still to send: one line in all, and one per destination when there
    are several (a record waits until every destination has it)."""
    print(f"backlog: {_waiting(backlog, now)}")
    destinations = backlog.get("destinations", {})
    if len(destinations) < 2:
        return
    for name, waiting in destinations.items():
        limit = waiting.get("max_age")
        note = f" (owed records up to {format_duration(limit)} old)" if limit else ""
        print(f"backlog to {name}{note}: {_waiting(waiting, now)}")


def _waiting(figures: dict, now: float) -> str:
    oldest = figures["oldest"]
    return f"{figures['intervals']} intervals, {figures['events']} events" + (
        f", oldest {_ago(oldest, now).removesuffix(' ago')} old" if oldest else ""
    )


def _print_buffer_use(backlog: dict, max_size: int) -> None:
    """How full the buffer is and what a full buffer has cost (see buffer._room)."""
    print(
        f"buffer: {backlog['size'] / 1e6:.1f} MB of {max_size / 1e6:g} MB;"
        f" dropped when full: {backlog['dropped_samples']} raw samples,"
        f" {backlog['dropped_synced']} synced records"
    )
