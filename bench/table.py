"""One shape for every benchmark figure, so `make bench` prints them as one table.

Each bench script exposes `figures(...) -> list[Figure]` next to its own `main()`;
bench/run.py calls them all and appends the table to bench/RESULTS.md.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Figure:
    name: str  # what was measured, e.g. "buffer ingest, 200 devices"
    value: float
    unit: str  # e.g. "rows/s", "CPU s/1k values", "MiB"
    baseline: float | None = None  # the same figure for the baseline, measured in the same run
    baseline_name: str = ""  # e.g. "raw sqlite3 executemany"

    @property
    def ratio(self) -> float | None:
        """value / baseline (for a rate, >1 is faster than the baseline; for a cost, slower)."""
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline


def render(figures: list[Figure]) -> str:
    """A Markdown table: figure, value, baseline, ratio."""
    lines = ["| figure | value | baseline | ratio |", "|---|---:|---:|---:|"]
    for f in figures:
        base = f"{_num(f.baseline)} ({f.baseline_name})" if f.baseline is not None else "-"
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "-"
        lines.append(f"| {f.name} | {_num(f.value)} {f.unit} | {base} | {ratio} |")
    return "\n".join(lines)


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0 or abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) < 1 else f"{x:.2f}"
