"""`edge-agent check` and `run` agree: what stops `run` at start is an error in `check`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main
from agent.systemd_unit import read_unit

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]
HEAD = """\
gateway: {id: gw, enterprise_id: 91510100MA6123456W, region_code: "510100", industry_code: C3011}
buffer: {path: BUFFER}
http: {enabled: false}
sync:
  url: https://central.example/api/v1/batches
  token_file: ${CREDENTIALS_DIRECTORY}/sync-token
devices:
  - name: m1
    profile: eastron-sdm630
    modbus_tcp: {host: 127.0.0.1}
    energy: {carrier: electricity, counter: import_kwh}
"""
HJ212 = """\
destinations:
  - name: eco
    hj212:
      host: 127.0.0.1
      port: 9212
      pw: "123456"
      st: "32"
      monitoring_points: [{mn: "010000A8900016F000169DC0", devices: [m1]}]
      codes: {import_kwh: {code: e10101, as: Cou}}
"""
GROUP = """\
destinations:
  - name: group
    http:
      url: https://group.example/api/v1/batches
      token_file: ${CREDENTIALS_DIRECTORY}/group-token
"""


def write(tmp_path: Path, text: str = HEAD) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(text.replace("BUFFER", str(tmp_path / "state" / "buffer.db")))
    return path


def run(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`edge-agent run` as a technician starts it, in that environment."""
    return subprocess.run(
        [sys.executable, "-m", "agent", "run", "-c", str(path)],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def checked(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["check", "-c", str(path), *args])
    return code, capsys.readouterr().err.splitlines()


def _no_credentials(tmp_path: Path) -> dict[str, str]:
    return {}


def _no_token(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "creds").mkdir()
    return {"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}


def _empty_token(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "sync-token").write_text("\n")
    return {"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}


def _token_unreadable(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "creds" / "sync-token").mkdir(parents=True)  # unreadable as a file, even to root
    return {"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}


def _buffer_cannot_be_made(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "state").write_text("a file where the buffer's directory should be")
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "sync-token").write_text("t0ken")
    return {"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_no_credentials, "sync.token_file: ${CREDENTIALS_DIRECTORY} is not set"),
        (_no_token, "sync.token_file: cannot read"),
        (_empty_token, "sync.token_file: "),
        (_token_unreadable, "sync.token_file: cannot read"),
        (_buffer_cannot_be_made, "buffer.path: cannot "),
    ],
    ids=["credentials-unset", "token-missing", "token-empty", "token-unreadable", "buffer"],
)
def test_what_stops_run_is_an_error_in_check(
    make, says: str, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each way `run` refuses to start with exit 78 is an error that `check` reports, at the
    same field, exit 78: `check` never says ok for a file `run` will not start with."""
    path = write(tmp_path)
    env = make(tmp_path)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, said = checked(path, capsys)
    started = run(path, env)
    assert started.returncode == 78, started.stderr
    refused = [line for line in started.stderr.splitlines() if says in line]
    assert refused, started.stderr
    assert code == 78
    where = refused[0].split(": ")[:2]  # file:line:col and the field
    assert where in [line.split(": ")[:2] for line in said]
    assert said[-1].endswith(" error") or said[-1].endswith(" errors")


def test_every_file_problem_is_listed_at_once(tmp_path: Path, capsys, monkeypatch) -> None:
    """`run` stops at the first file it cannot use; `check` lists them all."""
    path = write(tmp_path, HEAD + GROUP)
    (tmp_path / "state").write_text("not a directory")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    code, said = checked(path, capsys)
    assert code == 78
    assert [line.split(": ")[1] for line in said[:-1]] == [
        "buffer.path",
        "sync.token_file",
        "destinations[0].http.token_file",
    ]
    assert said[-1] == f"{path}: 3 errors"


def test_a_config_run_starts_with_passes_check(tmp_path: Path, capsys, monkeypatch) -> None:
    """Token present, buffer's place writable, an HJ 212 destination (it reads no file)."""
    path = write(tmp_path, HEAD + HJ212)
    (tmp_path / "sync-token").write_text("t0ken")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    code = main(["check", "-c", str(path)])
    out = capsys.readouterr()
    assert (code, out.err) == (0, "")
    assert out.out == f"{path}: ok (1 devices, 0 rules)\n"


UNIT = """\
[Unit]
Description=edge-agent

[Service]
ExecStart=/opt/edge-agent/bin/edge-agent run -c /etc/edge-agent/agent.yaml
StateDirectory=edge-agent
LoadCredential=sync-token:SOURCE
"""


def test_for_systemd_reads_the_credential_where_the_unit_loads_it(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--for-systemd UNIT: ${CREDENTIALS_DIRECTORY} as the unit sets it, the token read from
    its LoadCredential= source, a buffer in StateDirectory= left to systemd to make."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    source = tmp_path / "etc" / "sync-token"
    unit = tmp_path / "edge-agent.service"
    unit.write_text(UNIT.replace("SOURCE", str(source)))
    text = HEAD.replace("BUFFER", '"${STATE_DIRECTORY}/buffer.db"')
    path = write(tmp_path, text)
    code, said = checked(path, capsys, "--for-systemd", str(unit))
    assert code == 78
    assert said == [
        f"{path}:6:15: sync.token_file: cannot read {source} "
        f"(LoadCredential=sync-token:{source}): no such file",
        f"{path}: 1 error",
    ]
    source.parent.mkdir()
    source.write_text("t0ken\n")
    assert main(["check", "-c", str(path), "--for-systemd", str(unit)]) == 0
    assert capsys.readouterr().out == f"{path}: ok (1 devices, 0 rules)\n"


def test_for_systemd_names_a_credential_the_unit_does_not_load(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second platform's token needs its own LoadCredential= line: check says which."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    source = tmp_path / "sync-token"
    source.write_text("t0ken")
    unit = tmp_path / "edge-agent.service"
    unit.write_text(UNIT.replace("SOURCE", str(source)))
    path = write(tmp_path, HEAD + GROUP)
    code, said = checked(path, capsys, "--for-systemd", str(unit))
    assert code == 78
    assert said[0] == (
        f"{path}:16:19: destinations[0].http.token_file: {unit} loads no credential "
        "'group-token': add LoadCredential=group-token:/etc/edge-agent/group-token "
        "(systemctl edit edge-agent)"
    )
    dropin = tmp_path / "edge-agent.service.d"
    dropin.mkdir()
    (tmp_path / "group-token").write_text("g")
    line = f"[Service]\nLoadCredential=group-token:{tmp_path / 'group-token'}\n"
    (dropin / "group.conf").write_text(line)
    assert main(["check", "-c", str(path), "--for-systemd", str(unit)]) == 0


def test_for_systemd_without_a_unit_says_where_it_looked(tmp_path: Path, capsys) -> None:
    """No unit file at the path given: exit 64 (usage), and what to give instead."""
    path = write(tmp_path)
    code = main(["check", "-c", str(path), "--for-systemd", str(tmp_path / "none.service")])
    assert code == 64
    assert "none.service: no such unit file" in capsys.readouterr().err


def test_the_shipped_unit_is_read_as_systemd_sets_the_service_up() -> None:
    """systemd/edge-agent.service: the directories it makes and their variables, and the
    sync token's credential and its source (systemd.exec(5))."""
    view = read_unit(ROOT / "systemd" / "edge-agent.service")
    assert view.environ == {
        "STATE_DIRECTORY": "/var/lib/edge-agent",
        "RUNTIME_DIRECTORY": "/run/edge-agent",
        "CONFIGURATION_DIRECTORY": "/etc/edge-agent",
        "CREDENTIALS_DIRECTORY": "/run/credentials/edge-agent.service",
    }
    assert {c.id: c.source for c in view.credentials.values()} == {
        "sync-token": Path("/etc/edge-agent/sync-token")
    }
    assert view.made_by_systemd(Path("/var/lib/edge-agent/buffer.db"))
    assert not view.made_by_systemd(Path("/var/lib/other/buffer.db"))


def test_drop_ins_add_reset_and_continue_lines(tmp_path: Path) -> None:
    """A drop-in adds a credential, an empty assignment resets the list before it, a line
    ending in a backslash continues, and a credential without a path is in the credstore."""
    unit = tmp_path / "edge-agent.service"
    unit.write_text(
        "[Service]\nLoadCredential=old:/etc/old\nStateDirectory=edge-agent \\\n  extra\n"
    )
    dropin = tmp_path / "edge-agent.service.d"
    dropin.mkdir()
    (dropin / "10-reset.conf").write_text("[Service]\nLoadCredential=\n")
    (dropin / "20-tokens.conf").write_text(
        "[Service]\nLoadCredential=sync-token:/srv/token\nLoadCredential=group-token\n"
        "SetCredential=note:plain text\n# LoadCredential=commented:/nowhere\n"
    )
    view = read_unit(unit)
    assert {c.id: c.source for c in view.credentials.values()} == {
        "sync-token": Path("/srv/token"),
        "group-token": Path("/etc/credstore/group-token"),
        "note": None,
    }
    assert view.environ["STATE_DIRECTORY"] == "/var/lib/edge-agent:/var/lib/extra"
