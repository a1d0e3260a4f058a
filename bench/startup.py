"""Start-up: time from `edge-agent run` to READY=1, idle memory, and `check` of the same file.

    .venv/bin/python bench/startup.py --devices 1,200
    .venv/bin/python bench/startup.py --devices 5000     # a whole plant (issue 16)

For each size, N simulated Modbus TCP meters (bench/sim_meters.py, in their own
process) and a config polling them every minute, written point by point (20 points
a meter, no alias). Polls fall on the whole minute, so the agent is started at
least 20 s before one: its start-up never shares the CPU with 5,000 first polls,
and the idle RSS is before its first poll. The agent runs
with NOTIFY_SOCKET pointing at a datagram socket this script owns, as under
systemd; the time is from spawning the process to the READY=1 datagram, and its CPU
at that moment is the process's and its loader child's (config/loader.py
load_config_apart), from /proc. Idle RSS is read 5 s after READY, and whether the
daemon has PyYAML (libyaml's extension) or asyncua loaded: it should have neither,
its loader child reads the YAML and no device here speaks OPC UA. The baselines: a
bare `python -c pass` started the same way (what any Python process costs); for the
CPU to READY, `edge-agent check` of the same file (what start-up adds to reading
it); for `check`, "just reading the YAML": a process that reads the same file with
`yaml.load` and PyYAML's C loader (libyaml), its cyclic collector off as the agent's
loader has it (with it on, the same read takes two to three times as long). CPU
seconds of a finished process are its rusage. Every process it starts, it stops.
"""

from __future__ import annotations

import argparse
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.polling import agent_config, rss_mib, start_meters, stop
from bench.table import Figure, render
from bench.where_time_goes import cpu_seconds

IDLE_AFTER = 5.0
ROOT = Path(__file__).resolve().parent.parent
JUST_READ = (
    "import gc, sys, yaml; gc.disable(); "
    "yaml.load(open(sys.argv[1], encoding='utf-8').read(), Loader=yaml.CSafeLoader)"
)


def _python_cost() -> tuple[float, float]:
    """Seconds to start and exit a bare interpreter, and its RSS."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    took = time.perf_counter() - started
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    time.sleep(1.0)
    rss = rss_mib(bare.pid)
    stop(bare)
    return took, rss


def _clear_of_the_minute(margin: float = 20.0) -> None:
    """Wait until the next whole minute, when the meters are polled, is `margin` away."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.5)


def _cpu_of_run(args: list[str], env: dict[str, str]) -> float:
    """User + system CPU seconds of a process run to its end (its children's too)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _loaded(pid: int, marker: str) -> bool:
    """Whether a library's shared objects are mapped into the process (cryptography
    comes only with asyncua, so it says whether OPC UA support was imported)."""
    return marker in Path(f"/proc/{pid}/maps").read_text()


def measure(devices: int, workdir: Path) -> dict[str, float]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"}
    with start_meters(devices, workdir) as ports:
        config = workdir / "agent.yaml"
        config.write_text(agent_config(ports, workdir, poll="60s"))
        check = _cpu_of_run([sys.executable, "-m", "agent", "check", "-c", str(config)], env)
        just_read = _cpu_of_run([sys.executable, "-c", JUST_READ, str(config)], env)
        _clear_of_the_minute()
        sock_path = workdir / "notify.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(sock_path))
            sock.settimeout(120)
            started = time.perf_counter()
            agent = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", "-c", str(config)],
                env={**env, "NOTIFY_SOCKET": str(sock_path)},
                stderr=subprocess.DEVNULL,
            )
            try:
                while b"READY=1" not in sock.recv(4096):
                    pass
                ready = time.perf_counter() - started
                ready_cpu = cpu_seconds(agent.pid, children=True)  # with the loader
                time.sleep(IDLE_AFTER)
                rss = rss_mib(agent.pid)
                opcua = _loaded(agent.pid, "cryptography")
                yaml = _loaded(agent.pid, "/yaml/_yaml.")  # its loader child reads the YAML
            finally:
                stop(agent)
    return {
        "ready": ready,
        "ready_cpu": ready_cpu,
        "rss": rss,
        "opcua": opcua,
        "yaml": yaml,
        "check": check,
        "just_read": just_read,
    }


def figures(sizes: list[int]) -> list[Figure]:
    python_start, python_rss = _python_cost()
    out = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="edge-agent-bench-") as tmp:
            r = measure(n, Path(tmp))
        out.append(Figure(f"start-up to READY=1, {n} devices", r["ready"], "s",
                          python_start, "python -c pass"))  # fmt: skip
        out.append(Figure(f"CPU to READY=1, {n} devices", r["ready_cpu"], "CPU s",
                          r["check"], "check of the file"))  # fmt: skip
        out.append(Figure(f"check, {n} devices written point by point", r["check"], "CPU s",
                          r["just_read"], "yaml.load, C loader"))  # fmt: skip
        out.append(Figure(f"idle RSS, {n} devices", r["rss"], "MiB", python_rss, "bare python"))
        if r["opcua"]:
            out.append(Figure(f"asyncua imported with no OPC UA device ({n})", 1, "yes"))
        if r["yaml"]:
            out.append(Figure(f"PyYAML imported in the daemon ({n})", 1, "yes"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="1,200")
    args = parser.parse_args()
    print(render(figures([int(n) for n in args.devices.split(",")])))


if __name__ == "__main__":
    main()
