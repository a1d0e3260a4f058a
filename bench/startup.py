"""Start-up: time from `edge-agent run` to READY=1, and idle memory.

    .venv/bin/python bench/startup.py --devices 1,200

For each size, N simulated Modbus TCP meters (bench/sim_meters.py, in their own
process) and a config polling them every minute (so the agent is idle after its
first poll). The agent runs with NOTIFY_SOCKET pointing at a datagram socket this
script owns, as under systemd; the time is from spawning the process to the
READY=1 datagram. Idle RSS is read 5 s after READY. The baseline is a bare
`python -c pass` started the same way: what any Python process costs. Every
process it starts, it stops.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.polling import agent_config, rss_mib, start_meters, stop
from bench.table import Figure, render

IDLE_AFTER = 5.0


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


def _loaded(pid: int, marker: str) -> bool:
    """Whether a library's shared objects are mapped into the process (cryptography
    comes only with asyncua, so it says whether OPC UA support was imported)."""
    return marker in Path(f"/proc/{pid}/maps").read_text()


def measure(devices: int, workdir: Path) -> dict[str, float]:
    env_path = str(Path(__file__).resolve().parent.parent)
    with start_meters(devices, workdir) as ports:
        config = agent_config(ports, workdir, poll="60s")
        (workdir / "agent.yaml").write_text(config)
        sock_path = workdir / "notify.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(sock_path))
            sock.settimeout(60)
            env = {"PYTHONPATH": env_path, "NOTIFY_SOCKET": str(sock_path), "PATH": "/usr/bin"}
            started = time.perf_counter()
            agent = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", "-c", str(workdir / "agent.yaml")],
                env=env,
                stderr=subprocess.DEVNULL,
            )
            try:
                while b"READY=1" not in sock.recv(4096):
                    pass
                ready = time.perf_counter() - started
                time.sleep(IDLE_AFTER)
                rss = rss_mib(agent.pid)
                opcua = _loaded(agent.pid, "cryptography")
            finally:
                stop(agent)
    return {"ready": ready, "rss": rss, "opcua": opcua}


def figures(sizes: list[int]) -> list[Figure]:
    python_start, python_rss = _python_cost()
    out = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="edge-agent-bench-") as tmp:
            r = measure(n, Path(tmp))
        out.append(Figure(f"start-up to READY=1, {n} devices", r["ready"], "s",
                          python_start, "python -c pass"))  # fmt: skip
        out.append(Figure(f"idle RSS, {n} devices", r["rss"], "MiB", python_rss, "bare python"))
        if r["opcua"]:
            out.append(Figure(f"asyncua imported with no OPC UA device ({n})", 1, "yes"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="1,200")
    args = parser.parse_args()
    print(render(figures([int(n) for n in args.devices.split(",")])))


if __name__ == "__main__":
    main()
