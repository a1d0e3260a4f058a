"""Devices written alike: each distinct entry of them parsed once.

A plant's file lists thousands of meters, written out the same way but for their
names and addresses:

    devices:
      - name: m1
        modbus_tcp: {host: 10.0.0.1, port: 502}
        points:                          # the same 20 lines under every meter
          - {name: import_kwh, address: 0, type: float32, unit: kWh, kind: counter}
          ...

Read event by event (config/plain.py) a 5,000-meter file is a million events: 1.0 s of
the 1.4 s loading it takes, for text that is mostly the same few blocks again. So a
top-level block sequence of `- key:` mappings is cut into its items, and each item
into its entries (a key and its value, as written); every distinct entry is parsed
once, all of them in one small document, and the items are put together from them.
For that file: 10,003 distinct entries of 25,000 (a name and a port per meter; one
`poll`, one `points`, one `energy`), 0.2 s instead of 1.0 s. Entries written alike
become one object: 5,000 devices hold the same `points` list, which
config/valid_devices.py then validates once. The data is read-only from here on.

Why this is the data the whole text gives: a list is cut out of the text only where
its `key:` is a key of the top-level mapping (the rest of the text, its "skeleton",
is read with a marker in its place, which must come back as that key's value), and
only at lines that close every block open before them in the whole reading too (a
`- key:` at the sequence's indentation, a `key:` at the item mapping's column). Each
entry is read in the same place as in the file: an item of a block sequence at the
same indentation, its key at the same column, its other lines as written. What lines
alone cannot show (a quoted scalar or a flow collection running across a cut) reads
one entry into the next, which the count and the key of each entry read give away.
Whenever something fails or looks unusual (a tab, a carriage return, a directive, a
second document, a duplicate key, anything plain_data calls Unusual), `alike_data`
gives up and the whole text is read as before, so every message is the same; a list
not written as `- key:` items is left in the skeleton. tests/config/test_alike.py
holds both readings to agreeing, also on text mangled at random.
"""

from __future__ import annotations

import re
from typing import Any

from config.plain import Unusual, plain_data

__all__ = ["alike_data"]

MIN_ITEMS = 64
"""Fewer items than this in a file's sequences: not worth cutting (a file of a few
meters is read whole, as before)."""

_KEY = r"([A-Za-z_][A-Za-z0-9_-]*):(?: |\n)"  # a plain name, then ': ' or ':' at line end
# a top-level `name:` with nothing after it but a comment, then a block sequence's first
# item (blank and comment lines between): group 1 is the name, group 2 the item's indent
_SEQUENCE = re.compile(
    r"^([A-Za-z_][A-Za-z0-9_-]*):(?:[ ]+#[^\n]*)?[ ]*\n(?:[ ]*(?:#[^\n]*)?\n)*( *)- ", re.M
)
Entry = tuple[str, str]  # an entry's text, as an item of its own, and its key

# a tab, or a line break other than \n; a directive, or a document's start or end
_UNSAFE = ("\t", "\r", "\x85", "\u2028", "\u2029", "\n%", "\n---", "\n...")


def alike_data(text: str, loader: type[Any], least: int = MIN_ITEMS) -> Any:
    """The data of `text`, as plain_data(text, loader) gives it, read entry by distinct
    entry; None if the text has no list of at least `least` items to cut (read it whole
    then); Unusual if a part is (the whole text then says what)."""
    if text.startswith(("%", "---", "...")) or any(map(text.__contains__, _UNSAFE)):
        return None  # (searched for one by one: 20 ms for 7.5 MiB, a regex took 140)
    cuts: list[tuple[str, int, int, list[list[int]]]] = []  # key, start, end, items
    entries: dict[str, tuple[int, str]] = {}  # entry as parsed -> place in batch, its key
    at = 0
    while match := _SEQUENCE.search(text, at):
        sequence = _cut(text, match)
        if sequence is None:  # left in the skeleton, read whole
            at = match.end()
            continue
        key, start, end, written = sequence
        items = [[entries.setdefault(e, (len(entries), n))[0] for e, n in i] for i in written]
        cuts.append((key, start, end, items))
        at = end
    marker = "alike-cut-here"  # the value of each key cut out, in the skeleton
    if sum(len(items) for *_, items in cuts) < least or marker in text:
        return None
    spans = _between(cuts, len(text))
    skeleton = f"  {marker}\n".join(text[start:end] for start, end in spans)
    data = plain_data(skeleton, loader)
    parsed = plain_data("".join(entries), loader)  # the text of each distinct entry
    if not isinstance(data, dict) or not isinstance(parsed, list) or len(parsed) != len(entries):
        raise Unusual
    pairs: list[tuple[str, Any]] = []
    for entry, (_, key) in zip(parsed, entries.values(), strict=True):
        if not isinstance(entry, dict) or list(entry) != [key]:
            raise Unusual  # an entry read into another: a quote or bracket left open
        pairs.extend(entry.items())
    for key, _, _, items in cuts:
        if data.get(key) != marker:  # not a key of the top-level mapping (inside [ or ")
            raise Unusual
        data[key] = [_item(pairs, item) for item in items]
    return data


def _item(pairs: list[tuple[str, Any]], entries: list[int]) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for key, value in map(pairs.__getitem__, entries):
        if key in item:
            raise Unusual  # a duplicate key: the whole text's reading words it
        item[key] = value
    return item


def _between(cuts: list[tuple[str, int, int, Any]], length: int) -> list[tuple[int, int]]:
    """The spans of the text outside the sequences cut."""
    spans, at = [], 0
    for _, start, end, _ in cuts:
        spans.append((at, start))
        at = end
    return [*spans, (at, length)]


def _cut(text: str, match: re.Match[str]) -> tuple[str, int, int, list[list[Entry]]] | None:
    """The block sequence that `match` begins: its key, where it starts and ends, and its
    items cut into entries; None if it is not written plainly enough to be cut.

    Each entry is rewritten as an item of its own: the first line as `- key: ...` at
    the sequence's indentation, the rest as written.
    """
    indent = len(match.group(2))
    start = match.end() - indent - 2  # the first item's line
    first = re.compile(rf"(- +){_KEY}").match(text, start + indent)
    if first is None:
        return None
    column = indent + len(first.group(1))  # the item mapping's indentation
    head = " " * indent + "- " + " " * (column - indent - 2)
    key = re.compile(_KEY)
    # each line indented `column` or less that holds something: where a cut may fall
    # (found from the line break before it: `^` in MULTILINE mode is tried at every
    # character, 2.5 times as long)
    shallow = re.compile(rf"\n {{0,{column}}}(?=[^ \n])")
    items: list[list[Entry]] = []
    entry, name = -1, ""  # where the entry being read began (-1: none yet), its key
    end = len(text)
    for line in shallow.finditer(text, start - 1):
        here = line.start() + 1
        width = line.end() - here
        if text[line.end()] == "#":
            continue  # a comment: it stays with the entry before it
        item = width == indent and text.startswith("- ", line.end())
        if width == 0 and not item:
            end = here  # the next top-level key: the sequence ends
            break
        if width == column and text.startswith(("- ", "-\n"), line.end()):
            continue  # a compact list under the key above goes on
        found = key.match(text, here + column)
        if found is None or not ((item and text.startswith(head, here)) or width == column):
            return None  # anything else at this depth: the whole text's reading says
        if entry >= 0:
            items[-1].append((head + text[entry + column : here], name))
        if item:
            items.append([])
        entry, name = here, found.group(1)
    if entry < 0 or not text.endswith("\n", 0, end):
        return None  # the last line without its line break: a block scalar may differ
    items[-1].append((head + text[entry + column : end], name))
    return match.group(1), start, end, items
