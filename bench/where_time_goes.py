"""Where a benchmark's time goes: CPU seconds of processes, and a py-spy sample of one.

CPU time is read from /proc/<pid>/stat (proc(5): utime and stime, fields 14
and 15, and cutime and cstime, 16 and 17, in clock ticks), so a process is
measured from outside, without changing it. py-spy (pip install py-spy) samples
a running Python process's stacks the same way; where it is missing there is
no sample and the figures still come.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """utime + stime of a process (with its waited-for children's, if asked), /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (proc(5), fields 14 and 15)
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu(postmaster: int) -> float:
    """The postmaster's CPU with its exited children's, plus its running backends'."""
    total = cpu_seconds(postmaster, children=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
            try:
                total += cpu_seconds(int(entry.name))
            except (OSError, ValueError):
                continue
    return total


@dataclass
class Sample:
    """py-spy's view of one receiver: where its samples were, by function."""

    samples: int
    inclusive: list[tuple[str, float]]  # share of samples with this function on the stack
    leaves: list[tuple[str, float]]  # share of samples with this function on top


def profile(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy record of `pid` for `seconds` into `out` (collapsed stacks), in the background."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.access(spy, os.X_OK):
        print("  (py-spy not installed: pip install py-spy; no profile)", file=sys.stderr)
        return None
    return subprocess.Popen(
        [spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "20", "-f", "raw",
         "--nonblocking", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def summarize(path: Path, root: str, top: int = 12) -> Sample | None:
    """Shares of the samples under the frame `root` (a function, e.g. 'Class.method'),
    from that frame up: what one job of the process spends its time on."""
    if not path.exists():
        return None
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        under = [i for i, f in enumerate(frames) if f.startswith(f"{root} (")]
        if not under:
            continue  # other threads (and idle ones) are not the subject
        frames = frames[under[0] :]
        total += n
        for name in set(frames):
            inclusive[name] += n
        leaves[frames[-1]] += n
    if not total:
        return None
    share = lambda c: [(name, n / total) for name, n in c.most_common(top)]  # noqa: E731
    return Sample(total, share(inclusive), share(leaves))


def _short(frame: str) -> str:
    """'put (receiver/_postgres.py:160)' -> 'put (_postgres.py)'."""
    name, _, where = frame.partition(" (")
    file = where.split(":")[0].rsplit("/", 1)[-1]
    return f"{name} ({file})" if file else name
