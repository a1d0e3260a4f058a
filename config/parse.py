"""YAML text to a `Document`: plain data, and where every value and key was written.

Every value and key keeps its line and column, so that an error is reported where
the technician has to fix it, never at "somewhere in devices". Most files are read
straight from the parser's events (config/plain.py), and their node tree is composed
only if a position is asked for. Anything unusual in a file (an alias, a merge, a
duplicate key, a syntax error ...) sends it the long way here: composed into nodes
(libyaml when present, else PyYAML's SafeLoader) and turned into plain data by
hand, recording each value's and key's node by its path. Safe tags only; a
duplicate key, a key that is not a plain name, an alias to the collection that
holds it and aliases that expand without end are problems at their position.
"""

from __future__ import annotations

import functools
import operator
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from config.alike import alike_data
from config.errors import TOP, Document, NodePath, format_path, line_col, yaml_error
from config.plain import Tree, Unusual, Walk, plain_data
from domain.errors import ConfigInvalid, Problem

EXPANSION = 10
SLACK = 100_000
"""Aliases may make the data at most EXPANSION times the values written, plus SLACK:
a file of 5,000 meters written point by point (a million values) is its own size,
while a "billion laughs" file of a few lines expands a thousandfold within ten
lines and is stopped before it takes the memory. The document's size is not
limited here: it is read by then."""

# libyaml composes ten times faster and in half the memory (200 meters' points: 0.5 s
# and 13 MiB instead of 4 s and 23 MiB); the pure-Python loader is the fallback.
_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE_LOADER):  # type: ignore[valid-type,misc]  # chosen at import
    """The safe loader, with the calls libyaml makes back into Python for every node made
    cheap: 0.9 s instead of 1.2 s to compose a 5,000-meter file (a million nodes).

    For each node libyaml asks `resolve` for the tag and calls `descend_resolver` and
    `ascend_resolver` to track its path (for path resolvers, which the safe loader has
    none of). A tag depends only on the node's kind, text and implicitness, so resolve is
    wrapped in functools.lru_cache, whose hits are answered in C without a Python frame;
    the path tracking becomes two C builtins that do nothing of note (operator.is_ and
    tuple, both taking the arguments they are given). These are instance attributes, which
    the composer looks up before the class's methods.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.resolve = functools.lru_cache(maxsize=None)(super().resolve)
        self.descend_resolver = operator.is_  # (parent, index) -> ignored
        self.ascend_resolver = tuple  # () -> ignored

    def dispose(self) -> None:
        """The cache holds this loader's bound method: drop it, so the loader (and the
        text it holds) is freed at once, not at the next cyclic collection."""
        super().dispose()
        self.__dict__.pop("resolve", None)


_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"
_NUMBER = re.compile(r"[-+]?\d+(,\d+)*")
_DIGITS = re.compile(r"\d+")


def read_document(path: Path, file: str) -> Document:
    """Parse a YAML file into a Document; ConfigInvalid with the position of a syntax error."""
    return parse_document(read_text(path, file), file)


def read_text(path: Path, file: str) -> str:
    """A config file's text; ConfigInvalid if it cannot be read or is not UTF-8."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigInvalid([Problem(file, 1, 1, TOP, f"cannot read: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, col = line_col(raw, exc.start)
        message = f"not UTF-8 text (byte {raw[exc.start]:#04x})"
        raise ConfigInvalid([Problem(file, line, col, "yaml", message)]) from None
    return text


def parse_document(text: str, file: str) -> Document:
    """Parse YAML text into a Document (see read_document)."""
    try:  # most files: straight from the parser's events, positions found when asked
        data = _plain_data(text)
    except Unusual:
        pass  # composed and built below, recording positions and saying what is wrong
    else:
        tree = Tree(lambda: _compose(text, file))
        return Document(file, data, Walk(tree), Walk(tree, keys=True))
    root = _compose(text, file)
    if root is None:
        return Document(file, None, {}, {})
    builder = _Builder(file, root, may_alias="*" in text)  # an alias is written *name
    try:
        data = builder.build(root, ())
    except _TooLarge as exc:
        message = (
            f"aliases expand {builder.written} written values to more than {builder.limit} "
            '(a file that makes copies of copies, "billion laughs"?)'
        )
        raise ConfigInvalid([Problem(file, *exc.at, "yaml", message)]) from None
    except RecursionError:  # the builder recurses per level: as deep as the composer goes
        raise ConfigInvalid([Problem(file, 1, 1, "yaml", "nested too deeply")]) from None
    doc = Document(file, data, builder.values, builder.keys)
    if builder.problems:
        raise ConfigInvalid(builder.problems)
    return doc


def _plain_data(text: str) -> Any:
    """A long list of devices written alike by its distinct entries (config/alike.py), or
    the whole text from its events; Unusual if the recording builder must read it."""
    try:
        data = alike_data(text, _BASE_LOADER)
    except Unusual:
        data = None  # the whole text says whether, and where, it is unusual
    return plain_data(text, _BASE_LOADER) if data is None else data


def _compose(text: str, file: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_Loader)
    except (yaml.YAMLError, RecursionError):
        # PyYAML's own parser words syntax errors better than libyaml: ask it
        return _compose_python(text, file)


def _compose_python(text: str, file: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigInvalid([yaml_error(file, text, exc)]) from None
    except RecursionError:
        raise ConfigInvalid([Problem(file, 1, 1, "yaml", "nested too deeply")]) from None


def _count(root: yaml.Node) -> int:
    """The values written in the file: every node once, however often an alias uses it."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(value for _, value in node.value)
    return len(seen)


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.at = (node.start_mark.line + 1, node.start_mark.column + 1)


def _short(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


class _Builder:
    """Plain data from a node tree, recording the node of each value and key by path."""

    def __init__(self, file: str, root: yaml.Node, *, may_alias: bool = True) -> None:
        self.file = file
        self.root = root
        self.may_alias = may_alias  # without aliases the data is what is written: no limit
        self.written: int | None = None  # values written, counted once past SLACK
        self.limit = SLACK
        self.values: dict[NodePath, yaml.Node] = {}
        self.keys: dict[NodePath, yaml.Node] = {}
        self.problems: list[Problem] = []
        self._constructor = SafeConstructor()
        # scalars are immutable: a value written 5,000 times (`type: float32`) is
        # constructed once (1.8 of 6.9 s of a 5,000-meter file's build, profiled)
        self._scalars: dict[tuple[str, str], Any] = {}
        self._open: set[int] = set()  # collections being built: an alias to one is a loop

    def problem(self, node: yaml.Node, message: str, path: NodePath | None = None) -> None:
        mark = node.start_mark
        where = "yaml" if path is None else format_path(path)
        self.problems.append(Problem(self.file, mark.line + 1, mark.column + 1, where, message))

    def build(self, node: yaml.Node, path: NodePath) -> Any:
        if self.may_alias and len(self.values) >= self.limit:
            if self.written is not None:
                raise _TooLarge(node)
            self.written = _count(self.root)  # a large file, or copies: which?
            self.limit = EXPANSION * self.written + SLACK
            if len(self.values) >= self.limit:
                raise _TooLarge(node)
        self.values[path] = node
        if isinstance(node, yaml.ScalarNode):
            if node.style == "":  # libyaml's plain style; PyYAML's is None
                node.style = None
            return self.scalar(node, path)
        if id(node) in self._open:
            self.problem(node, "an alias refers to the collection that contains it", path)
            return None
        if node.tag not in (_MAP, _SEQ):
            self.problem(node, f"tag {_short(node.tag)} is not supported here", path)
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self._open.discard(id(node))

    def scalar(self, node: yaml.ScalarNode, path: NodePath) -> Any:
        key = (node.tag, node.value)
        if key in self._scalars:
            return self._scalars[key]
        try:
            value = self._scalars[key] = self._constructor.construct_object(node)
            return value
        except yaml.constructor.ConstructorError:
            self.problem(node, f"tag {_short(node.tag)} is not supported", path)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            self.problem(node, f"cannot read {node.value!r} as {_short(node.tag)}: {exc}", path)
        return None

    def mapping(self, node: yaml.MappingNode, path: NodePath) -> dict[str, Any]:
        """Keys written in the mapping win over keys merged in with `<<`."""
        out: dict[str, Any] = {}
        merges = [v for k, v in node.value if k.tag == _MERGE]
        for source in reversed(merges):  # the first source merged wins among sources
            for entry in source.value if isinstance(source, yaml.SequenceNode) else [source]:
                if not isinstance(entry, yaml.MappingNode) or entry.tag != _MAP:
                    self.problem(entry, "<< merges a mapping or a list of mappings", path)
                elif id(entry) in self._open:
                    self.problem(entry, "an alias refers to the collection that contains it", path)
                else:
                    self._open.add(id(entry))
                    out.update(self.mapping(entry, path))
                    self._open.discard(id(entry))
        first: dict[str, yaml.Node] = {}
        for key, value in _decimal_commas(node):
            if key.tag == _MERGE:
                continue
            if not isinstance(key, yaml.ScalarNode):
                self.problem(key, "a key must be a plain name, not a list or a mapping", path)
                continue
            name = key.value
            if name in first:
                line = first[name].start_mark.line + 1
                message = f"duplicate key '{name}' (first at line {line})"
                self.problem(key, message, (*path, name))
                continue
            first[name] = key
            self.keys[(*path, name)] = key
            out[name] = self.build(value, (*path, name))
        return out


def _decimal_commas(node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
    """The mapping's entries, with a number that a decimal comma split in flow style joined.

    In `{type: float32, scale: 0,01}` YAML reads `scale: 0` and a key `01` with no
    value, as a comma separates a flow mapping's entries. Written in block style the
    same `scale: 0,01` is the string '0,01', which a number field refuses by name. So
    digits that follow a number's comma at once, as a key without a value, are taken
    back into the number, as the string written: the field that needs a number says
    so, never `01: unknown key`.
    """
    entries: list[tuple[yaml.Node, yaml.Node]] = node.value
    if not node.flow_style or not any(
        isinstance(k, yaml.ScalarNode) and k.value[:1].isdigit() for k, _ in entries[1:]
    ):
        return entries
    out: list[tuple[yaml.Node, yaml.Node]] = []
    joined: set[int] = set()  # the numbers put together here: more digits may follow
    for key, value in entries:
        before = out[-1][1] if out else None
        if before is not None and _split_from(before, key, value, id(before) in joined):
            text = f"{before.value},{key.value}"
            whole = yaml.ScalarNode(_STR, text, before.start_mark, key.end_mark, style="'")
            joined.add(id(whole))
            out[-1] = (out[-1][0], whole)
        else:
            out.append((key, value))
    return out


def _split_from(before: yaml.Node, key: yaml.Node, value: yaml.Node, joined: bool) -> bool:
    """Whether `key:` (digits, no value) is the rest of the number `before`, cut at a comma:
    the comma is the one character between them."""
    return (
        isinstance(before, yaml.ScalarNode)
        and isinstance(key, yaml.ScalarNode)
        and isinstance(value, yaml.ScalarNode)
        and (before.style in (None, "") or joined)
        and key.style in (None, "")
        and _NUMBER.fullmatch(before.value) is not None
        and _DIGITS.fullmatch(key.value) is not None
        and value.value == ""
        and value.style in (None, "")
        and before.end_mark.index + 1 == key.start_mark.index
    )
