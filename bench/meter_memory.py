"""Memory per meter of the running agent, without the noise of RSS (issue 16).

    .venv/bin/python bench/meter_memory.py --sizes 200,1000 --seconds 12
    .venv/bin/python bench/meter_memory.py --sizes 200,1000 --trace 10   # and where

For each size: that many simulated meters (bench/sim_meters.py, other
processes) and the agent, run in a process of its own through
`agent.service.run` with the bench config of bench/polling.py. After `seconds`
of polling it samples, every 5 ms for 3 s, `sys.getallocatedblocks()` (the
objects alive, counted exactly, whatever pymalloc's pools hold) and RSS, and
prints the lowest (between polls) and the highest (polls in flight). Between
two sizes it prints the difference per further meter. With `--trace N` the
process also runs tracemalloc with N frames and the largest differences
between the two sizes' snapshots, by traceback, are printed per meter at the
lowest point.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `bench.*` when run as `python bench/meter_memory.py`

from bench.polling import agent_config, rss_mib  # noqa: E402
from bench.scale import settle, start_meters  # noqa: E402

SAMPLE_EVERY = 0.005  # s between two samples of the block count
SAMPLE_FOR = 3.0  # s of samples: three turns of the 1 s polls


async def _sample(seconds: float) -> dict:
    """The block count and RSS at their lowest and highest over `seconds`, from the loop."""
    low = high = sys.getallocatedblocks()
    rss_low = rss_high = rss_mib(os.getpid())
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.sleep(SAMPLE_EVERY)
        blocks = sys.getallocatedblocks()
        low, high = min(low, blocks), max(high, blocks)
        rss = rss_mib(os.getpid())
        rss_low, rss_high = min(rss_low, rss), max(rss_high, rss)
    return {"blocks_low": low, "blocks_high": high, "rss_low": rss_low, "rss_high": rss_high}


async def _child(config: Path, seconds: float, trace: int, out: Path) -> None:
    """The agent as `edge-agent run` starts it (agent/service.py), without /metrics."""
    from agent import garbage
    from agent.daemon import Agent
    from config.loader import load_config

    if trace:
        tracemalloc.start(trace)
    agent = Agent(load_config(config))
    await agent.start()
    garbage.settle()
    await asyncio.sleep(seconds)
    result = await _sample(SAMPLE_FOR)
    if trace:  # at a moment no poll is in flight: what stays between polls
        for _ in range(2000):
            if not agent.polling:
                break
            await asyncio.sleep(0.001)
        result["in_flight"] = len(agent.polling)
        tracemalloc.take_snapshot().dump(str(out) + ".trace")
    result["rss_end"] = rss_mib(os.getpid())
    out.write_text(json.dumps(result))
    await agent.stop()


def measure(count: int, seconds: float, trace: int, workdir: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with start_meters(count, workdir) as (ports, meters):
        config = workdir / "agent.yaml"
        config.write_text(agent_config(ports, workdir))
        out = workdir / f"memory{count}.json"
        child = subprocess.Popen(
            [sys.executable, __file__, "--child", str(config), str(seconds), str(trace), str(out)],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        settle(meters, count, 0.0)
        child.wait()
        result = json.loads(out.read_text())
    result["trace"] = str(out) + ".trace" if trace else None
    return result


def _per_meter(trace_low: str, trace_high: str, meters: int, top: int) -> None:
    low = tracemalloc.Snapshot.load(trace_low)
    high = tracemalloc.Snapshot.load(trace_high)
    stats = high.compare_to(low, "traceback")
    total = sum(s.size_diff for s in stats)
    print(f"tracemalloc: {total / meters:.0f} B a further meter; largest by traceback:")
    for stat in stats[:top]:
        frames = [f"{Path(f.filename).name}:{f.lineno}" for f in reversed(stat.traceback)]
        print(
            f"  {stat.size_diff / meters:8.0f} B {stat.count_diff / meters:6.1f} blocks  "
            + " < ".join(frames[:7])
        )  # fmt: skip  (innermost frame first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200,1000")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--trace", type=int, default=0, help="tracemalloc frames (0: off)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        config, seconds, trace, out = args.child
        asyncio.run(_child(Path(config), float(seconds), int(trace), Path(out)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'meters':>6} {'blocks low':>11} {'blocks high':>12} {'RSS low':>8} {'RSS high':>9}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="edge-agent-memory-") as tmp:
        for count in sizes:
            workdir = Path(tmp) / str(count)
            workdir.mkdir()
            r = results[count] = measure(count, args.seconds, args.trace, workdir)
            print(f"{count:>6} {r['blocks_low']:>11} {r['blocks_high']:>12}"
                  f" {r['rss_low']:>8.1f} {r['rss_high']:>9.1f}", flush=True)  # fmt: skip
        _differences(sizes, results, args.trace, args.top)


def _differences(sizes: list[int], results: dict, trace: int, top: int) -> None:
    for low, high in itertools.pairwise(sizes):
        a, b, n = results[low], results[high], high - low
        print(
            f"{low} -> {high} meters, per further meter: "
            f"{(b['blocks_low'] - a['blocks_low']) / n:.1f} blocks between polls, "
            f"{(b['blocks_high'] - a['blocks_high']) / n:.1f} at the peak, "
            f"RSS {1024 * (b['rss_high'] - a['rss_high']) / n:.1f} KiB"
        )
        if trace:
            _per_meter(a["trace"], b["trace"], n, top)


if __name__ == "__main__":
    main()
