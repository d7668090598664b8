"""YAML in and out, safely and within bounds: a spec or config file may come from someone else.

`load_yaml` uses a safe loader (no tags run code) and, before building any Python object, scans the document's
events to bound what a small file can make us do: its size, its nesting depth and the number of nodes it stands
for once aliases are expanded (a 500-byte "billion laughs" alias bomb stands for millions of nodes, which every
later walk over the data would visit). Over a bound it raises our `SpecError` in milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NoReturn

import yaml

from perceptspec._errors import SpecError
from perceptspec._recursion import recursion_room

#: libyaml's safe loader and dumper when PyYAML was built with it (about five times faster), else PyYAML's own
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SAFE_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

MAX_BYTES = 64 * 2**20  # characters of YAML text: a 10,000-block spec is about 2 MB
MAX_DEPTH = 2_500  # nested collections: a spec 1,000 graphs deep nests about 2,000 deep (deeper than libyaml takes;
#                    PyYAML's own parser takes it, in time quadratic in the depth: ~7 s at this bound)
MAX_NODES = 2_000_000  # scalars and collections once aliases are expanded: a 10,000-block spec has ~200,000
_LIBYAML_DEPTH = 1_000  # libyaml refuses deeper documents; PyYAML's own parser takes them (more slowly)
_FRAMES_PER_LEVEL = 4  # PyYAML's composer recurses about this many Python frames per nested collection


def load_yaml(text: str, where: str) -> Any:
    """The plain data (dicts, lists, scalars) of one YAML document, loaded safely; `SpecError` (prefixed `where`)
    for malformed YAML or a document over the bounds above."""
    if len(text) > MAX_BYTES:
        raise SpecError(where, [f"the YAML text has {len(text):,} characters, more than the {MAX_BYTES:,} a spec or "
                                f"config may have"])
    depth = _check_events(text, where)
    if depth < _LIBYAML_DEPTH:
        return _load(text, SAFE_LOADER, where)
    with recursion_room(_FRAMES_PER_LEVEL * depth):  # PyYAML's composer recurses per level
        return _load(text, yaml.SafeLoader, where)


def _load(text: str, loader: type[yaml.SafeLoader], where: str) -> Any:
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506  (a safe loader: no tags executed)
    except yaml.YAMLError as e:
        if loader is not yaml.SafeLoader:  # PyYAML's own loader words the error with the offending line quoted
            return _load(text, yaml.SafeLoader, where)
        raise SpecError(where, [" ".join(str(e).split())]) from None


def _check_events(text: str, where: str) -> int:
    """Scan the document's events (no objects built): raise if it nests deeper than MAX_DEPTH or stands for more
    than MAX_NODES values with aliases expanded; return its depth."""
    try:
        return _scan(yaml.parse(text, Loader=SAFE_LOADER), where)
    except yaml.YAMLError as e:
        # PyYAML's own parser takes deeper nesting (in time quadratic in the depth of brackets: refuse a document
        # whose brackets alone nest too deep before starting it), and words a syntax error with the line quoted
        if "maximum nesting depth" in str(e) and (depth := _bracket_depth(text)) > MAX_DEPTH:
            _too_deep(where, f"{depth:,} levels of brackets")
    try:
        return _scan(yaml.parse(text, Loader=yaml.SafeLoader), where)
    except yaml.YAMLError as e:
        raise SpecError(where, [" ".join(str(e).split())]) from None


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def _bracket_depth(text: str) -> int:
    """How deep the flow collections ([...], {...}) outside quoted strings nest (comments aside: an estimate that
    only decides how early a document libyaml already found too deep is refused)."""
    depth = deepest = 0
    for bracket in _NOT_BRACKETS.sub("", _QUOTED.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _scan(events: Iterator[yaml.Event], where: str) -> int:
    sizes: dict[str, int] = {}  # anchor -> expanded size of the node it marks
    open_sizes: list[list[Any]] = []  # [anchor, expanded size so far] per open collection
    total = depth = 0
    for event in events:
        if isinstance(event, yaml.CollectionStartEvent):
            open_sizes.append([event.anchor, 1])
            total += 1
            depth = max(depth, len(open_sizes))
            if depth > MAX_DEPTH:
                _too_deep(where, f"line {_line(event)}")
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, size = open_sizes.pop()
            if anchor is not None:
                sizes[anchor] = size
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            total += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            size = sizes.get(event.anchor or "", 1)
            total += size
        else:
            continue
        if total > MAX_NODES:
            raise SpecError(where, [f"the YAML stands for more than {MAX_NODES:,} values once its aliases (*name) "
                                    f"are expanded (line {_line(event)}): an alias bomb?"])
        if open_sizes:
            open_sizes[-1][1] += size
    return depth


def _line(event: yaml.Event) -> int:
    return event.start_mark.line + 1 if event.start_mark is not None else 0


def _too_deep(where: str, detail: str) -> NoReturn:
    raise SpecError(where, [f"the YAML nests deeper than {MAX_DEPTH:,} levels ({detail})"])
