"""Plain data straight from the YAML parser's events, and positions found when asked.

config/parse.py composes the whole file into a node tree and builds the data from it,
recording the node of every value and key by its path, so that any problem can be
shown where it was written. For a 5,000-meter file that tree is a million nodes:
380 MiB, and about 1.5 s of the 2.5 s it took to parse. Yet a file that loads cleanly
never asks where a value was written. So a file with nothing unusual in it is built
here from the parser's events as they come, keeping no tree (1.0 s and 30 MiB for the
same file), and the tree is composed only if a check does ask for a position (`Tree`,
`Walk`).

Unusual is anything the recording builder handles or words: an anchor or alias, a
merge key (<<), a duplicate key, a key that is not a plain scalar, a tag it does not
support, a scalar that fails to construct, a digit-led key in a flow mapping (perhaps
a number cut at a decimal comma), a stream that is not exactly one document, a syntax
error. Then `Unusual` is raised at once and config/parse.py does the whole file as it
always has, so every message is the same as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)

from config.base import NodePath

__all__ = ["Tree", "Unusual", "Walk", "plain_data"]

_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_UNTAGGED = (None, "!")  # the tag is resolved from the text, as the composer does
_MISSING = object()


class Unusual(Exception):
    """The text has something only the recording builder handles (and words)."""


def plain_data(text: str, loader: type[Any]) -> Any:
    """The data of a one-document YAML text, equal to what config/parse.py's builder
    makes of it; Unusual if that builder must do it. `loader` is a PyYAML loader class
    (the C one when there is libyaml)."""
    parser = loader(text)
    try:
        return _Events(parser).build(anchors="&" in text)
    except (yaml.YAMLError, ConstructorError, ValueError, TypeError, KeyError, OverflowError):
        raise Unusual from None
    finally:
        parser.dispose()


class _Events:
    """One pass over the events with a stack of open collections: no recursion, no tree."""

    def __init__(self, parser: Any) -> None:
        self._parser = parser
        self._constructor = SafeConstructor()
        # a scalar written 5,000 times (`type: float32`) is resolved and constructed once;
        # scalars are immutable (str, int, float, bool, None, dates, bytes)
        self._scalars: dict[tuple[Any, ...], Any] = {}

    def scalar(self, event: ScalarEvent) -> Any:
        """The value of a scalar not met before (build() looks the others up itself)."""
        key = (event.tag, event.implicit, event.value)
        tag = event.tag
        if tag in _UNTAGGED:
            tag = self._parser.resolve(yaml.ScalarNode, event.value, event.implicit)
        value = self._constructor.construct_object(yaml.ScalarNode(tag, event.value))
        self._scalars[key] = value
        return value

    def build(self, anchors: bool) -> Any:
        """`anchors`: whether the text may hold one (has an '&'); if not, events are not
        asked (0.03 s of a 5,000-meter file)."""
        get, scalars, scalar = self._parser.get_event, self._scalars, self.scalar
        if get().__class__ is not StreamStartEvent or get().__class__ is not DocumentStartEvent:
            raise Unusual  # an empty stream: the builder says what is missing
        # the collection being filled, whether it is a mapping and in flow style, and the
        # key waiting for its value (_MISSING: a key comes next); the root goes in `top`
        top: list[Any] = []
        into: Any = top
        is_map, flow, key = False, False, _MISSING
        stack: list[tuple[Any, bool, bool, Any]] = []
        while True:
            event = get()
            kind = event.__class__
            if kind is ScalarEvent:
                if anchors and event.anchor is not None:
                    raise Unusual
                if is_map and key is _MISSING:
                    key = event.value
                    if key in into or (flow and into and key[:1].isdigit()):
                        raise Unusual  # a duplicate, or perhaps the rest of a number
                    if event.tag is not None or key == "<<":
                        raise Unusual  # a tagged key, perhaps a merge
                    continue
                value = scalars.get((event.tag, event.implicit, event.value), _MISSING)
                if value is _MISSING:
                    value = scalar(event)
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                mapping = kind is MappingStartEvent
                if (
                    (anchors and event.anchor is not None)
                    or (is_map and key is _MISSING)  # a collection as a key
                    or event.tag not in (*_UNTAGGED, _MAP if mapping else _SEQ)
                ):
                    raise Unusual
                stack.append((into, is_map, flow, key))
                into, is_map, flow, key = {} if mapping else [], mapping, event.flow_style, _MISSING
                continue
            elif (kind is MappingEndEvent or kind is SequenceEndEvent) and stack:
                value = into
                into, is_map, flow, key = stack.pop()
            elif kind is DocumentEndEvent and not stack and len(top) == 1:
                if get().__class__ is not StreamEndEvent:
                    raise Unusual  # more than one document
                return top[0]
            else:
                raise Unusual  # an alias, or a stream the composer would refuse
            if is_map:
                into[key] = value
                key = _MISSING
            else:
                into.append(value)


class Tree:
    """The node tree of a text, composed the first time a position is asked for."""

    def __init__(self, compose: Callable[[], yaml.Node | None]) -> None:
        self._compose: Callable[[], yaml.Node | None] | None = compose
        self._root: yaml.Node | None = None

    @property
    def root(self) -> yaml.Node | None:
        if self._compose is not None:
            self._root, self._compose = self._compose(), None
        return self._root


class Walk:
    """The node a value (or, with `keys`, its key) was written at, found along its path.

    For texts `plain_data` built: there each key is written once and nothing is merged,
    so the one entry of a mapping with the key is the one the data holds.
    """

    def __init__(self, tree: Tree, *, keys: bool = False) -> None:
        self._tree = tree
        self._keys = keys

    def get(self, path: NodePath, /) -> yaml.Node | None:
        node, key = self._tree.root, None
        for part in path:
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                found = next(((k, v) for k, v in node.value if k.value == part), None)
                if found is None:
                    return None
                key, node = found
            elif (
                isinstance(node, yaml.SequenceNode)
                and type(part) is int
                and 0 <= part < len(node.value)
            ):
                key, node = None, node.value[part]
            else:
                return None
        if self._keys:
            return key
        if isinstance(node, yaml.ScalarNode) and node.style == "":
            node.style = None  # libyaml's plain style, as PyYAML's (parse._Builder does too)
        return node
