"""Plain data from a YAML node tree in one lean pass, and positions found when asked.

config/parse.py's builder records the node of every value and key by its path as it
builds: a dictionary entry and a path tuple for each of a million values in a
5,000-meter file (1.4 s of its 2.5 s parse). Yet a file that loads cleanly never asks
where a value was written. So a file with nothing unusual in it (no alias, no merge,
no duplicate key, no unsupported tag, no decimal comma split by a flow mapping, no
scalar that fails to construct) is built here without recording anything, in about a
quarter of the time; a position, when a check does want one, is found by walking the
tree along the path (`Walk`). Anything unusual gives up at once (`Unusual`), and the
recording builder does the whole file, with its messages, as before.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from config.base import NodePath

__all__ = ["Unusual", "Walk", "plain_data"]

_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_Scalar, _Mapping, _Sequence = yaml.ScalarNode, yaml.MappingNode, yaml.SequenceNode
_MISSING = object()


class Unusual(Exception):
    """The tree has something only the recording builder handles (and words)."""


def plain_data(root: yaml.Node) -> Any:
    """The data of a tree without aliases, as the recording builder makes it; Unusual if
    the tree needs that builder. The caller guarantees there are no aliases (its text has
    no '*'), so no node is reached twice and nothing can expand."""
    try:
        return _Plain().build(root)
    except RecursionError:
        raise Unusual from None


class _Plain:
    def __init__(self) -> None:
        self._constructor = SafeConstructor()
        # a scalar written 5,000 times (`type: float32`) is constructed once; scalars
        # are immutable (str, int, float, bool, None, dates, bytes)
        self._scalars: dict[tuple[str, str], Any] = {}

    def scalar(self, node: yaml.ScalarNode) -> Any:
        key = (node.tag, node.value)
        value = self._scalars.get(key, _MISSING)
        if value is _MISSING:
            try:
                value = self._scalars[key] = self._constructor.construct_object(node)
            except (ConstructorError, ValueError, TypeError, KeyError, OverflowError):
                raise Unusual from None
        return value

    def build(self, node: yaml.Node) -> Any:
        kind = node.__class__
        if kind is _Scalar:
            return self.scalar(node)
        if kind is _Sequence and node.tag == _SEQ:
            return [self.scalar(i) if i.__class__ is _Scalar else self.build(i) for i in node.value]
        if kind is _Mapping and node.tag == _MAP:
            return self.mapping(node)
        raise Unusual

    def mapping(self, node: yaml.MappingNode) -> dict[str, Any]:
        out: dict[str, Any] = {}
        # a digit-led key after the first in a flow mapping may be the rest of a number
        # cut at a decimal comma (parse._decimal_commas joins it)
        digits_may_join = bool(node.flow_style)
        first = True
        for key, value in node.value:
            if key.__class__ is not _Scalar or key.tag == _MERGE:
                raise Unusual
            name = key.value
            if name in out or (digits_may_join and not first and name[:1].isdigit()):
                raise Unusual
            first = False
            if value.__class__ is _Scalar:  # most values: no call to build()
                scalar = self._scalars.get((value.tag, value.value), _MISSING)
                out[name] = self.scalar(value) if scalar is _MISSING else scalar
            else:
                out[name] = self.build(value)
        return out


class Walk:
    """The node a value (or, with `keys`, its key) was written at, found along its path.

    For trees `plain_data` built: there each key is written once and nothing is merged,
    so the first entry of a mapping with the key is the one the data holds.
    """

    def __init__(self, root: yaml.Node, *, keys: bool = False) -> None:
        self._root = root
        self._keys = keys

    def get(self, path: NodePath, /) -> yaml.Node | None:
        node, key = self._root, None
        for part in path:
            if isinstance(node, _Mapping) and isinstance(part, str):
                found = next(((k, v) for k, v in node.value if k.value == part), None)
                if found is None:
                    return None
                key, node = found
            elif isinstance(node, _Sequence) and type(part) is int and 0 <= part < len(node.value):
                key, node = None, node.value[part]
            else:
                return None
        if self._keys:
            return key
        if isinstance(node, _Scalar) and node.style == "":
            node.style = None  # libyaml's plain style, as PyYAML's (parse._Builder does too)
        return node
