"""The systemd unit and the installer, checked with systemd's own tools."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "edge-agent.service"
INSTALL = ROOT / "systemd" / "install.sh"
EXEC_START = "/opt/edge-agent/bin/edge-agent"
needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_the_unit_has_what_an_unattended_daemon_needs() -> None:
    """notify with a watchdog, no restart loop on a bad config, state, config and credential."""
    d = directives()
    assert d["Type"] == ["notify"]
    assert d["WatchdogSec"] and d["Restart"] == ["on-failure"]
    assert d["RestartPreventExitStatus"] == ["78"]
    assert d["StateDirectory"] == ["edge-agent"] and d["ConfigurationDirectory"] == ["edge-agent"]
    assert d["LoadCredential"] == ["sync-token:/etc/edge-agent/sync-token"]
    assert d["User"] == ["edge-agent"] and d["SupplementaryGroups"] == ["dialout"]
    assert d["ExecStart"][0].startswith(EXEC_START + " run -c /etc/edge-agent/agent.yaml")
    assert d["ExecReload"] == ["kill -HUP $MAINPID"]
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(d["RestrictAddressFamilies"][0].split())
    assert "char-ttyUSB rw" in d["DeviceAllow"]  # serial ports still work


@needs_systemd
def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing wrong; the only thing it needs is the program
    itself, so a copy differing only in ExecStart's path is verified too."""
    real = subprocess.run(
        ["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True, check=False
    )
    complaints = [line for line in real.stderr.splitlines() if line.strip()]
    if not Path(EXEC_START).exists():
        assert complaints == [f"{UNIT.name}: Command {EXEC_START} is not executable: "
                              "No such file or directory"]  # fmt: skip
    else:
        assert real.returncode == 0, real.stderr
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(EXEC_START, sys.executable + " -m agent"))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")


@needs_systemd
def test_the_exposure_rating_is_2_or_lower() -> None:
    """`systemd-analyze security --offline=yes` rates the unit 2.0 or better."""
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(UNIT)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.0


def test_install_sh_is_valid_sh() -> None:
    """The installer parses under POSIX sh."""
    subprocess.run(["sh", "-n", str(INSTALL)], check=True)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", "-s", "sh", str(INSTALL)], check=True)


def test_install_sh_dry_run_installs_the_unit_and_a_config_that_passes_check(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into a DESTDIR: the unit as shipped, a starter agent.yaml that passes `check` (with
    its token where the credential puts it), the user with dialout and the venv announced,
    next steps printed (the token before the check); a second run keeps the config the
    technician may have edited."""
    env = {
        **os.environ,
        "DESTDIR": str(tmp_path),
        "DRY_RUN": "1",
        "EDGE_AGENT": str(Path(sys.executable).parent / "edge-agent"),
    }
    args = ["sh", str(INSTALL), "--profile", "eastron-sdm630", "--modbus-tcp", "10.1.2.3"]
    first = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    unit = tmp_path / "etc/systemd/system/edge-agent.service"
    config = tmp_path / "etc/edge-agent/agent.yaml"
    assert unit.read_text() == UNIT.read_text()
    (tmp_path / "sync-token").write_text("t0ken")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "var/lib/edge-agent"))
    assert main(["check", "-c", str(config)]) == 0
    assert 'host: "10.1.2.3"' in config.read_text()
    assert re.search(r"would run: useradd --system .*--groups dialout .*edge-agent", first.stdout)
    assert f"would run: python3 -m venv {tmp_path}/opt/edge-agent" in first.stdout
    assert "sudo systemctl enable --now edge-agent" in first.stdout
    steps = first.stdout[first.stdout.index("Next steps:") :]
    assert steps.index("/etc/edge-agent/sync-token") < steps.index("check --for-systemd -c")
    config.write_text(config.read_text() + "# edited\n")
    second = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    assert f"kept {config} (it exists)" in second.stdout
    assert config.read_text().endswith("# edited\n")
