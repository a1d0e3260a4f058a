"""Write docs/configuration.md, the config reference, from the models' JSON Schema.

    .venv/bin/python tools/gen_config_docs.py           # rewrite the file
    .venv/bin/python tools/gen_config_docs.py --check   # exit 1 if it is stale

A test regenerates it and compares, so the reference cannot drift from the
models: change a field's description in config/models.py or in a protocol's
drivers/<protocol>/settings.py, then run this.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import TypeAdapter  # noqa: E402  (imports follow the path fix)

from config.profiles import list_profiles  # noqa: E402
from config.schema import config_json_schema  # noqa: E402
from config.units import Duration, Size  # noqa: E402
from drivers.registry import PROTOCOLS  # noqa: E402

OUT = ROOT / "docs" / "configuration.md"
KINDS = {
    TypeAdapter(Duration).json_schema()["pattern"]: "duration",
    TypeAdapter(Size).json_schema()["pattern"]: "size",
}
HEADER = """\
# Configuration reference

Generated from `config/models.py` and the protocols' `drivers/*/settings.py` by
`tools/gen_config_docs.py`: do not edit by hand.

`edge-agent check -c agent.yaml` validates a file and prints every problem as
`file:line:col: field: message`; `edge-agent schema` prints the JSON Schema, for
an editor to complete and check the file as you type. `examples/plant.yaml` is a
complete example.

Durations are written `500ms`, `5s`, `2m`, `24h`; sizes `512MB`, `2GB`. Path
fields expand `${{VAR}}` and `${{VAR:-default}}`. Unknown keys are errors.

Shipped meter profiles (`profile:`): {profiles}.

A device has exactly one protocol key, holding how to reach the meter:

{protocols}
"""


def render() -> str:
    """The whole reference, one section per mapping, in the order a file reads."""
    schema = config_json_schema()
    defs = schema["$defs"]
    protocols = "\n".join(
        f"- `{key}:` {spec.summary} For example `{key}: {_flow(spec.example)}`"
        for key, spec in PROTOCOLS.items()
    )
    profiles = ", ".join(f"`{p}`" for p in list_profiles())
    lines = [HEADER.format(profiles=profiles, protocols=protocols)]
    done: set[str] = set()

    def section(title: str, path: str, definition: dict[str, Any]) -> None:
        lines.extend([f"## {title} — `{path}`", ""])
        if definition.get("description"):
            lines.extend([definition["description"], ""])
        lines.extend(["| Field | Type | Default | Description |", "|---|---|---|---|"])
        required = definition.get("required", [])
        properties = definition.get("properties", {})
        for name, prop in properties.items():
            default = "required" if name in required else "optional"
            default = _default(prop["default"]) if "default" in prop else default
            text = prop.get("description") or _section_text(prop, defs)
            text = text.replace("|", "\\|")
            lines.append(f"| `{name}` | {_type(prop)} | {default} | {text} |")
        lines.append("")
        for name, prop in properties.items():
            for ref in _refs(prop):
                if ref not in done:
                    done.add(ref)
                    item = "[]" if prop.get("type") == "array" else ""
                    section(ref, f"{path}.{name}{item}".removeprefix("agent.yaml."), defs[ref])

    section("Config", "agent.yaml", schema)
    return "\n".join(lines).rstrip() + "\n"


def _refs(prop: dict[str, Any]) -> list[str]:
    """Definitions a property points to, through lists and unions."""
    if "$ref" in prop:
        return [prop["$ref"].rsplit("/", 1)[-1]]
    nested = [*prop.get("anyOf", []), *prop.get("oneOf", [])]
    nested += [prop["items"]] if "items" in prop else []
    return [ref for sub in nested for ref in _refs(sub)]


def _section_text(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """A mapping field without a description of its own says what its section is."""
    refs = _refs(prop)
    return defs[refs[0]].get("description", "") if len(refs) == 1 else ""


def _type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return f"mapping: {prop['$ref'].rsplit('/', 1)[-1]}"
    if "anyOf" in prop or "oneOf" in prop:
        options = prop.get("anyOf", prop.get("oneOf"))
        return " or ".join(_type(p) for p in options if p.get("type") != "null")
    if "enum" in prop:
        return "one of " + ", ".join(f"`{v}`" for v in prop["enum"])
    kind = prop.get("type")
    if kind == "array":
        return f"list of {_type(prop['items'])}"
    if kind == "string":
        return KINDS.get(prop.get("pattern", ""), "text")
    bounds = [
        f"{word} {prop[key]}"
        for key, word in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"))
        if key in prop
    ]
    return ", ".join([{"boolean": "true or false"}.get(kind, str(kind)), *bounds])


def _default(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return "`[" + ", ".join(str(v) for v in value) + "]`"
    return f"`{json.dumps(value) if isinstance(value, bool) or value == '' else value}`"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        stale = not OUT.exists() or OUT.read_text(encoding="utf-8") != text
        print(f"{OUT.relative_to(ROOT)} is stale: run tools/gen_config_docs.py" if stale else "ok")
        return 1 if stale else 0
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


def _flow(fields: object) -> str:
    """A mapping in YAML's flow style, as the examples in the docs write a link."""
    assert isinstance(fields, dict)
    return "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in fields.items()) + "}"


if __name__ == "__main__":
    sys.exit(main())
