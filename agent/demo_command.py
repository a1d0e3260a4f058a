"""`edge-agent demo`: its options.

Apart from agent/demo.py, which imports the reference receiver: parsing the
options must work on a plant PC without the `receiver` extra, so that
agent/cli.py can say what to install rather than show a traceback.
"""

from __future__ import annotations

import argparse

from config.units import parse_duration


def demo_interval(text: str) -> float:
    """`--interval`: whole seconds dividing a minute and below it, as emissions.intervals
    allows beside the demo's 1m (config/checks/_sections.py)."""
    try:
        seconds = parse_duration(text)
    except ValueError:  # pydantic's error for a malformed duration is a ValueError
        seconds = 0.0
    if seconds != int(seconds) or not 1 <= seconds < 60 or 60 % seconds:
        raise argparse.ArgumentTypeError(
            f"must be whole seconds dividing a minute, 1s to 30s, like 2s (got {text!r})"
        )
    return seconds


def demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S s")
    p.add_argument("--json", action="store_true", help="end with one JSON line of totals")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument(
        "--interval", type=demo_interval, default=10.0, metavar="D",
        help="the short interval, e.g. 2s (default 10s); polls, syncs and tables scale with it",
    )  # fmt: skip
