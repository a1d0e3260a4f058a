"""`edge-agent check` of an mqtt destination: each problem at its file, line and field."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from agent.cli import main
from buffer import PendingBatch
from cloud_sync.mqtt.payloads import length_label, thingsboard_messages
from cloud_sync.mqtt.settings import placeholders
from tests.fixtures.batches import GATEWAY, interval
from tests.fixtures.pki import make_pki

HEAD = """\
gateway: {id: gw, enterprise_id: 91510100MA6123456W, region_code: "510100", industry_code: C3011}
buffer: {path: BUFFER}
http: {enabled: false}
sync:
  url: https://central.example/api/v1/batches
devices:
  - name: m1
    profile: eastron-sdm630
    modbus_tcp: {host: 127.0.0.1}
    energy: {carrier: electricity, counter: import_kwh}
destinations:
  - name: broker
    mqtt:
"""
"""Thirteen lines: the mqtt settings start at line 14."""


def checked(tmp_path: Path, settings: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "agent.yaml"
    text = HEAD.replace("BUFFER", str(tmp_path / "buffer.db")) + settings
    path.write_text(text)
    code = main(["check", "-c", str(path)])
    return code, capsys.readouterr().err


def test_a_good_destination_passes(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "broker").write_text("gw\npassword\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    code, err = checked(
        tmp_path,
        "      url: mqtts://broker.example:8883\n"
        "      credentials_file: ${CREDENTIALS_DIRECTORY}/broker\n"
        "      topic: plants/{gateway}/{kind}\n"
        "      gzip: true\n"
        "      protocol: 5\n",
        capsys,
    )
    assert code == 0, err


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ("      url: mqtt://127.0.0.1\n      topic: a/{device}\n",
         "agent.yaml:15:14: destinations[0].mqtt.topic: {device} cannot be filled here"),
        ("      url: mqtt://127.0.0.1\n      topic: a/+/b\n",
         "agent.yaml:15:14: destinations[0].mqtt.topic: a topic to publish to has no wildcards"),
        ("      url: mqtt://127.0.0.1\n      status_topic: s/{kind}\n",
         "agent.yaml:15:21: destinations[0].mqtt.status_topic: {kind} cannot be filled here"),
        ("      url: http://127.0.0.1\n",
         "agent.yaml:14:12: destinations[0].mqtt.url:"),
        ("      url: mqtt://127.0.0.1\n      protocol: 4\n",
         "agent.yaml:15:17: destinations[0].mqtt.protocol:"),
        ("      url: mqtt://127.0.0.1\n      credentials_file: /nonexistent/creds\n",
         "agent.yaml:15:25: destinations[0].mqtt.credentials_file: cannot read"),
        ("      url: mqtt://127.0.0.1\n      format: thingsboard\n      gzip: true\n",
         "agent.yaml:16:13: destinations[0].mqtt.gzip: ThingsBoard reads JSON text"),
        ("      url: mqtt://127.0.0.1\n      ca_file: /nonexistent/ca.pem\n",
         "agent.yaml:15:16: destinations[0].mqtt.ca_file: cannot load the CA file"),
    ],
    ids=["device-in-batch", "wildcard", "status-kind", "scheme", "protocol", "credentials",
         "tb-gzip", "ca"],
)  # fmt: skip
def test_problems_are_reported_where_they_are(
    settings: str, says: str, tmp_path: Path, capsys
) -> None:
    code, err = checked(tmp_path, settings, capsys)
    assert code == 78
    assert says in err, err


def test_a_password_in_clear_text_beyond_this_machine_is_a_warning(tmp_path: Path, capsys) -> None:
    (tmp_path / "creds").write_text("gw\npw\n")
    code, err = checked(
        tmp_path,
        f"      url: mqtt://broker.example\n      credentials_file: {tmp_path}/creds\n",
        capsys,
    )  # fmt: skip
    assert code == 0  # a warning: the technician may mean it (a broker on a closed network)
    assert "agent.yaml:14:12: destinations[0].mqtt.url: mqtt:// to broker.example" in err, err


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_require_subscriber_on_mqtt_3_1_1_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], protocol: str
) -> None:
    """3.1.1 has no PUBACK reason codes: `check` says the setting cannot work there."""
    code, err = checked(
        tmp_path,
        "      require_subscriber: true\n      url: mqtt://127.0.0.1\n"
        f'      protocol: "{protocol}"\n',
        capsys,
    )
    assert code == 0, err
    warned = "agent.yaml:14:27: destinations[0].mqtt.require_subscriber: MQTT 3.1.1 has no PUBACK"
    assert (warned in err) == (protocol == "3.1.1"), err


def test_placeholders_and_interval_labels() -> None:
    assert placeholders("edge-agent/{gateway}/{kind}") == ["gateway", "kind"]
    with pytest.raises(ValueError):
        placeholders("a/{gateway")
    assert [length_label(s) for s in (30, 60, 900, 3600, 86_400, 90)] == [
        "30s", "1m", "15m", "1h", "1d", "90s",
    ]  # fmt: skip


README = Path(__file__).resolve().parents[3] / "README.md"


def mqtt_examples() -> list[str]:
    text = README.read_text()
    section = text[text.index("### Deliver over MQTT") : text.index("### When something goes")]
    return re.findall(r"```yaml\n(.*?)```", section, re.S)


@pytest.mark.parametrize("example", mqtt_examples(), ids=["broker", "thingsboard"])
def test_the_readme_examples_pass_check(example: str, tmp_path: Path, capsys, monkeypatch) -> None:
    """Each MQTT example of the README, its credential files in place, passes `check`
    (which makes the destination: the credential file is read, the TLS paths checked)."""
    creds = tmp_path / "creds"
    creds.mkdir()
    for name in ("broker", "thingsboard-token"):
        (creds / name).write_text("gw1\npassword\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    pki = make_pki(tmp_path)
    text = example.replace("/etc/edge-agent/region-ca.pem", str(pki.ca))
    text = text.replace("/etc/edge-agent/gw1.pem", str(pki.client_cert))
    (creds / "gw1-key").write_bytes(pki.client_key.read_bytes())
    path = tmp_path / "agent.yaml"
    path.write_text(text + f"buffer: {{path: {tmp_path / 'buffer.db'}}}\n")
    assert main(["check", "-c", str(path)]) == 0, capsys.readouterr().err


def test_thingsboard_topics_per_device_and_kind() -> None:
    """A topic naming {device} and {kind}: one message per device and kind, each the
    gateway API's object for that device alone, all under the batch's key."""
    intervals = [
        json.dumps(interval(d, f"2026-11-26T08:0{m}:00+08:00", 1))
        for d in ("a", "b")
        for m in range(2)
    ]
    events = [{"id": 1, "ts": 1_764_115_200.0, "device": None, "kind": "buffer_full",
               "severity": "critical", "message": "full"}]  # fmt: skip
    pending = PendingBatch(7, {"gateway": GATEWAY, "sequence": 7}, events, intervals)
    messages = thingsboard_messages(pending, "tb/{gateway}/{device}/{kind}", mqtt5=True)
    by_topic = {m.topic: json.loads(m.payload) for m in messages}
    gw = GATEWAY["id"]
    assert set(by_topic) == {f"tb/{gw}/a/intervals", f"tb/{gw}/b/intervals", f"tb/{gw}/{gw}/events"}
    start = datetime.fromisoformat("2026-11-26T08:00:00+08:00").timestamp()
    got = [e["ts"] for e in by_topic[f"tb/{gw}/a/intervals"]["a"]]
    assert got == [int(start * 1000), int((start + 60) * 1000)]
    assert by_topic[f"tb/{gw}/{gw}/events"][gw][0]["values"]["event"] == "buffer_full"
    assert {dict(m.user)["key"] for m in messages} == {f"{gw}:7"}
