"""Problems in a config file, each pinned to the line and column it is about.

A `Document` is a YAML file as plain data plus where every value and key was
written; everything that finds fault with a config turns its finding into a
`Problem` through it, so no message ever lacks a position. `ConfigInvalid` is
the one exception a config load raises.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Protocol, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from cloud_sync.registry import KINDS
from config.base import DestinationBase, DeviceBase, NodePath
from config.units import format_duration, parse_duration
from domain.errors import Problem, Severity
from drivers.registry import PROTOCOLS

if TYPE_CHECKING:  # PyYAML is imported where a node exists (config/loader.py says why)
    import yaml

"""Keys and indices from the top of a document: ("devices", 1, "points", 0)."""

TOP = "(top level)"


def format_path(path: NodePath) -> str:
    """("devices", 1, "points", 0, "adress") -> "devices[1].points[0].adress"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or TOP


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice a typo most likely meant, if any is close enough."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def suggest(word: str, choices: Sequence[str], known: str = "known") -> str:
    """To append to a message: (did you mean 'x'?), or the known choices if none is close."""
    match = closest(word, choices)
    if match is not None:
        return f" (did you mean '{match}'?)"
    return f" ({known}: {', '.join(choices)})" if choices else ""


class Nodes(Protocol):
    """Where each value (or key) was written, by path: a dict recorded while building, or
    config.plain.Walk, which finds the node when asked."""

    def get(self, path: NodePath, /) -> yaml.Node | None: ...


@dataclass(frozen=True)
class Document:
    """A YAML file as plain data, with the node each value and each key came from."""

    file: str
    data: Any
    values: Nodes
    keys: Nodes

    def value_at(self, path: NodePath) -> Any:
        """The plain value at `path` (the path must exist)."""
        value = self.data
        for part in path:
            value = value[part]
        return value

    def position(self, path: NodePath, *, key: bool = False) -> tuple[int, int]:
        """1-based line and column of the value (or its key) at `path`.

        A path that was not written (a default) falls back to its nearest
        written ancestor, preferring the key that names it. An empty value
        (`host:` with nothing after it) is shown at its key: PyYAML places an
        empty scalar wherever the next token starts, often the next line.
        """
        prefer_key = key
        while True:
            node = self.keys.get(path) if prefer_key else None
            value = self.values.get(path)
            if node is None and _empty(value):
                node = self.keys.get(path)
            node = node if node is not None else value
            if node is not None:
                return node.start_mark.line + 1, node.start_mark.column + 1
            if not path:
                return 1, 1
            path, prefer_key = path[:-1], True

    def problem(
        self, path: NodePath, message: str, *, key: bool = False, severity: Severity = "error"
    ) -> Problem:
        line, col = self.position(path, key=key)
        return Problem(self.file, line, col, format_path(path), message, severity)


def _scalar(node: yaml.Node | None) -> yaml.ScalarNode | None:
    """The node if it is a scalar (a node comes from PyYAML, which is imported by then)."""
    import yaml

    return node if isinstance(node, yaml.ScalarNode) else None


def _empty(node: yaml.Node | None) -> bool:
    scalar = _scalar(node)
    return scalar is not None and scalar.style is None and scalar.value == ""


def yaml_error(file: str, text: str, exc: yaml.YAMLError) -> Problem:
    """A PyYAML syntax or reader error as a Problem at the spot PyYAML stopped."""
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = exc.problem or exc.context or "cannot parse"
        if exc.context and message.startswith("but "):  # "expected ..., but found ..."
            message = f"{exc.context} {message}"
        elif exc.context and exc.problem and exc.context_mark is not None:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        return Problem(file, line, col, "yaml", message)
    if isinstance(exc, yaml.reader.ReaderError):
        line, col = line_col(text, exc.position)
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        message = f"character {ord(char):#06x} is not allowed in YAML"
        return Problem(file, line, col, "yaml", message)
    return Problem(file, 1, 1, "yaml", str(exc))


def line_col(text: str | bytes, offset: int) -> tuple[int, int]:
    """1-based line and column of an offset into text (characters) or bytes."""
    before = text[:offset]
    if isinstance(before, bytes):
        before = before.decode("latin-1")  # one character per byte: columns count bytes
    return before.count("\n") + 1, offset - before.rfind("\n")


# --- pydantic errors in plain words -------------------------------------------

_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
    "dict_type": "a mapping (key: value)",
}
_LIMITS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}


@dataclass(frozen=True)
class _Finding:
    path: NodePath
    message: str
    key: bool = False
    expected: str | None = None  # type errors: merged when a union tried several types
    got: str = ""


def translate(exc: ValidationError, doc: Document, root: Any) -> list[Problem]:
    """Every error of one validation as a Problem at its node, in plain words.

    `root` is the type `doc.data` was validated as; it tells which keys a
    mapping allows, for the did-you-mean of an unknown key.
    """
    findings = [_finding(err, doc, root) for err in exc.errors(include_url=False)]
    merged: dict[tuple[NodePath, str], list[str]] = {}
    problems = []
    for f in findings:
        if f.expected is None:
            problems.append(doc.problem(f.path, f.message, key=f.key))
        elif (f.path, f.got) not in merged:
            merged[f.path, f.got] = [f.expected]
        elif f.expected not in merged[f.path, f.got]:
            merged[f.path, f.got].append(f.expected)
    for (path, got), expected in merged.items():
        problems.append(doc.problem(path, f"must be {' or '.join(expected)} (got {got})"))
    return problems


def _finding(err: ErrorDetails, doc: Document, root: Any) -> _Finding:
    loc, kind, ctx = err["loc"], err["type"], err.get("ctx") or {}
    path = _data_path(doc.data, loc)
    value, node = doc.value_at(path), doc.values.get(path)
    if kind == "missing":
        return _Finding(path, f"missing required field '{loc[-1]}'", key=True)
    if kind == "extra_forbidden":
        allowed = _field_names(_walk(root, loc[:-1])[0])
        return _Finding(path, "unknown key" + suggest(str(loc[-1]), allowed, "allowed keys"), True)
    if kind == "device_protocol":
        return _one_key_of(path, value, node, list(PROTOCOLS), DeviceBase, "a device")
    if kind == "destination_kind":
        return _one_key_of(path, value, node, list(KINDS), DestinationBase, "a destination")
    if kind in _EXPECTED:
        got = _quote_hint(value, node) if kind == "string_type" else None
        return _Finding(path, "", expected=_EXPECTED[kind], got=got or _described(value, node))
    if kind == "literal_error":
        options = str(ctx.get("expected", "")).replace(" or ", ", ")
        wanted = f"one of {options}" if "," in options else options
        got = _quote_hint(value, node) if options.startswith("'") else None
        return _Finding(path, f"must be {wanted} (got {got or _shown(value, node)})")
    if kind in _LIMITS:
        name, words = _LIMITS[kind]
        bound = _limit(ctx[name], node)
        return _Finding(path, f"must be {words} {bound} (got {_raw(value, node)})")
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return _Finding(path, "must not be empty" if least == 1 else f"needs {least} items or more")
    if kind == "too_long":
        return _Finding(path, f"must have at most {ctx.get('max_length')} items")
    if kind == "string_too_short":
        return _Finding(path, f"must be at least {ctx.get('min_length')} characters long")
    if kind == "string_too_long":
        return _Finding(path, f"must be at most {ctx.get('max_length')} characters long")
    if kind == "string_pattern_mismatch":
        field, shown = _walk(root, loc)[1], _shown(value, node)
        if field is not None and field.description:
            expected = field.description
            return _Finding(path, f"has the wrong form (got {shown}); expected: {expected}")
        return _Finding(path, f"must match {ctx.get('pattern')} (got {shown})")
    if kind == "value_error":
        return _Finding(path, str(ctx.get("error", err["msg"])))
    message = err["msg"]
    return _Finding(path, message[:1].lower() + message[1:])


def _one_key_of(
    path: NodePath,
    value: Any,
    node: yaml.Node | None,
    keys: list[str],
    base: type[BaseModel],
    what: str,
) -> _Finding:
    """Which of `keys` (a device's protocols, a destination's kinds) an item has, and the
    typo that hides the one it needs."""
    needs = f"{what} needs exactly one of {', '.join(keys)}"
    if not isinstance(value, dict):
        return _Finding(path, f"{needs} (got {_described(value, node)})")
    found = [p for p in keys if p in value]
    if len(found) > 1:
        return _Finding((*path, found[1]), f"{needs} (found {' and '.join(found)})", key=True)
    common = set(_field_names(base))
    for key in value:
        match = closest(key, keys) if key not in common else None
        if match is not None:
            return _Finding((*path, key), f"unknown key (did you mean '{match}'?); {needs}", True)
    return _Finding(path, f"{needs} (found none)")


def _data_path(data: Any, loc: tuple[str | int, ...]) -> NodePath:
    """The part of a pydantic `loc` that names keys and indices of the data.

    The rest (discriminator tags, union members, a missing key) is skipped.
    """
    path: list[str | int] = []
    for part in loc:
        is_key = isinstance(data, dict) and isinstance(part, str) and part in data
        is_index = isinstance(data, list) and type(part) is int and 0 <= part < len(data)
        if is_key or is_index:
            data = data[part]
            path.append(part)
    return tuple(path)


def _walk(root: Any, loc: tuple[str | int, ...]) -> tuple[Any, FieldInfo | None]:
    """The type found at `loc` from `root`, and the last model field on the way."""
    tp, field = root, None
    for part in loc:
        tp = _strip(tp, part)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            for name, info in tp.model_fields.items():
                if part in (name, info.alias):
                    tp, field = info.annotation, info
                    break
        elif get_origin(tp) is list and isinstance(part, int):
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:  # a mapping's value, under any key
            tp = get_args(tp)[1]
    return _strip(tp, None), field


def _strip(tp: Any, part: str | int | None) -> Any:
    """Unwrap Annotated and Optional; in a tagged union take the member tagged `part`."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        if get_origin(tp) in (Union, UnionType):
            members = [m for m in get_args(tp) if m is not type(None)]
            tagged = [
                m
                for m in members
                if any(isinstance(x, Tag) and x.tag == part for x in getattr(m, "__metadata__", ()))
            ]
            if tagged or len(members) == 1:
                tp = (tagged or members)[0]
                continue
        return tp


def _field_names(model: Any) -> list[str]:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _raw(value: Any, node: yaml.Node | None) -> str:
    """The value as written in the file."""
    scalar = _scalar(node)
    return str(value) if scalar is None else scalar.value


def _shown(value: Any, node: yaml.Node | None) -> str:
    """Strings quoted, other scalars as written."""
    return repr(value) if isinstance(value, str) else _raw(value, node)


def _described(value: Any, node: yaml.Node | None) -> str:
    """The value and what YAML made of it: "'0,01', a string"."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"{value!r}, a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    kind = "a boolean" if isinstance(value, bool) else _KINDS.get(type(value), type(value).__name__)
    return f"{_raw(value, node)}, {kind}"


_KINDS = {int: "a number", float: "a number", date: "a date", datetime: "a date"}


def _quote_hint(value: Any, node: yaml.Node | None) -> str | None:
    """For text YAML 1.1 read as something else (000012345670, no, 2024-01-01)."""
    scalar = _scalar(node)
    if scalar is None or scalar.style is not None:
        return None
    if value is None or isinstance(value, str):
        return None
    raw = scalar.value
    if isinstance(value, bool):
        what = f"the boolean {str(value).lower()}"
    elif isinstance(value, int | float):
        what = "a number" if str(value) == raw else f"the number {value}"
    else:
        what = _KINDS.get(type(value), type(value).__name__)
    return f'{raw}, which YAML reads as {what}; write it in quotes: "{raw}"'


def _limit(limit: Any, node: yaml.Node | None) -> str:
    """A bound in the unit the field was written in: 1s for a duration."""
    if isinstance(limit, float):
        text = f"{limit:g}"
        scalar = _scalar(node)
        if limit and scalar is not None:
            try:
                parse_duration(scalar.value)
            except PydanticCustomError:
                return text
            return format_duration(limit)
        return text
    return str(limit)


def unknown(what: str, name: str, known: Sequence[str]) -> str:
    """ "unknown profile 'x' (did you mean 'y'?); known: a, b" """
    match = closest(name, known)
    hint = f" (did you mean '{match}'?)" if match else ""
    return f"unknown {what} '{name}'{hint}; known: {', '.join(known) or 'none'}"
