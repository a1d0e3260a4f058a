"""Every example in the README is checked: YAML loads, commands parse, outputs are real."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from agent.cli import main, parser
from agent.demo import energy_check
from config.loader import load_config
from config.models import uscc_check_digit

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BASE = """\
gateway: {id: gw, enterprise_id: 91510100MA6123456W, region_code: "510100", industry_code: C3011}
sync: {url: "https://central.example/api/v1/batches"}
devices:
"""


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


@pytest.mark.parametrize("snippet", blocks("yaml"))
def test_yaml_examples_pass_check(snippet: str, tmp_path: Path) -> None:
    """Each YAML example in the README is a valid device (inside a minimal config)."""
    path = tmp_path / "agent.yaml"
    if snippet.startswith("gateway:"):  # a whole file, or the head and a section
        path.write_text(snippet)
        assert load_config(path).config.devices or "devices:" not in snippet
        return
    device = "  " + snippet.replace("\n", "\n  ")
    path.write_text(BASE + device)
    assert load_config(path).config.devices


@pytest.mark.parametrize(
    "doc, snippet",
    [
        (doc.name, snippet)
        for doc in sorted((ROOT / "docs").glob("*.md"))
        for snippet in re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S)
    ],
)
def test_yaml_examples_in_docs_pass_check(doc: str, snippet: str, tmp_path: Path) -> None:
    """A section shown in docs/ (destinations:, devices: ...) passes check in a minimal file."""
    path = tmp_path / "agent.yaml"
    head = BASE.removesuffix("devices:\n")
    path.write_text(snippet if snippet.startswith("gateway:") else head + snippet)
    load_config(path)


def test_commands_in_the_readme_exist() -> None:
    """Every `edge-agent ...` line in a shell example parses with the real CLI."""
    lines = [
        line.split("#")[0].strip()
        for block in blocks("sh")
        for line in block.splitlines()
        if line.strip().startswith("edge-agent ")
    ]
    assert lines
    for line in lines:
        parser().parse_args(shlex.split(line)[1:])


def test_the_check_output_shown_is_what_check_prints(tmp_path: Path, capsys, monkeypatch) -> None:
    """The error listing in the README is exactly what `check` prints for that mistake."""
    plant = (ROOT / "examples" / "plant.yaml").read_text()
    broken = plant.replace(
        "{name: power_kw, address: 0x0034, function: input, type: float32, scale: 0.001",
        "{name: power_kw, adress: 0x0034, function: input, type: float32, scale: 0,01",
    )
    assert broken != plant
    (tmp_path / "agent.yaml").write_text(broken)
    monkeypatch.chdir(tmp_path)
    unit = str(ROOT / "systemd" / "edge-agent.service")  # as --for-systemd finds it installed
    assert main(["check", "--for-systemd", unit, "-c", "agent.yaml"]) == 78
    printed = [
        line for line in capsys.readouterr().err.splitlines() if not line.startswith("warning:")
    ]
    listing = re.search(r"```\n(agent\.yaml:.*?)```", README, re.S)
    assert listing is not None
    shown = listing.group(1).strip().splitlines()
    assert printed == shown


def test_the_demo_summary_shown_has_the_real_keys() -> None:
    """The JSON line shown for the demo uses the keys the demo prints."""
    shown = json.loads(blocks("json")[0].replace(", ...}", "}"))
    assert set(shown) <= set(energy_check([], {}))


def test_every_enterprise_id_shown_has_its_check_digit() -> None:
    """A unified social credit code in the README, docs/ or examples/ passes GB 32100's check
    digit: a technician copies them, and `check` would warn about every copy."""
    texts = [README, *(p.read_text() for p in (ROOT / "docs").glob("*.md"))]
    texts += [p.read_text() for p in (ROOT / "examples").glob("*.yaml")]
    codes = {c for text in texts for c in re.findall(r"enterprise_id: \"?(\w{18})\b", text)}
    assert codes
    wrong = sorted(c for c in codes if uscc_check_digit(c) != c[17])
    assert wrong == []
