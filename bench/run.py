"""`make bench`: every benchmark in one run, one table, appended to bench/RESULTS.md.

    .venv/bin/python bench/run.py            # the full run (about an hour, then an hour's soak)
    .venv/bin/python bench/run.py --quick    # small sizes, for a look (about 2 minutes)

Each figure sits next to its baseline measured in the same run (a bare pymodbus
loop, raw sqlite3, raw httpx, a bare interpreter), because these machines are
shared and noisy: the ratios travel, the absolute figures less so.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import (  # noqa: E402
    drain,
    ingest,
    mqtt_drain,
    polling,
    receiver_ingest,
    scale,
    soak,
    startup,
)
from bench.table import Figure, render  # noqa: E402

RESULTS = HERE / "RESULTS.md"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{cpu_model()}, {os.cpu_count()} cores"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument(
        "--soak", type=int, default=60, metavar="MIN",
        help="the full run ends with a soak of 200 meters this long (0: none)",
    )  # fmt: skip
    args = parser.parse_args()
    from bench import region_day  # a region's day through MQTT (issue 13); a hunk of its own

    about = machine()
    print(about, flush=True)
    figures: list[Figure] = []
    if args.quick:
        figures += polling.figures([10, 50], seconds=10, warmup=3)
        figures += scale.figures([200], seconds=15, warmup=3)
        figures += ingest.figures(devices=50, boundaries=20, polls=20)
        figures += drain.figures((20_000,))
        figures += receiver_ingest.figures(20_000)
        figures += mqtt_drain.figures((20_000,))
        figures += region_day.figures(gateways=50, devices=20, hours=1)
        figures += startup.figures([1, 50])
    else:
        figures += polling.figures([10, 100, 200], seconds=60, warmup=5)
        # the curve to 5,000: bench/scale.py --sizes 200,500,1000,2000,3000,5000 --seconds 90
        figures += scale.figures([200, 1000, 2000], seconds=65)  # a minute's close in each
        figures += ingest.figures()
        figures += drain.figures()
        figures += receiver_ingest.figures()
        figures += mqtt_drain.figures()
        figures += region_day.figures()  # 14.4 M intervals: 10 to 30 minutes
        figures += startup.figures([1, 200])
        if args.soak:
            figures += soak.figures(200, minutes=args.soak, warmup=10)
    table = render(figures)
    print(table)
    if not args.no_record:
        kind = "quick run" if args.quick else "full run"
        with RESULTS.open("a") as out:
            out.write(f"\n## {about} ({kind})\n\n{table}\n")
        print(f"appended to {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
