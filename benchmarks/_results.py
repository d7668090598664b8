"""Writing a benchmark's table into benchmarks/RESULTS.md, between its own markers (`<!-- NAME:begin -->` and
`<!-- NAME:end -->`); text outside the markers is left as it is."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
#: a new section goes before this heading (or at the end when there is none)
BEFORE = "## Issue #13"


def write_section(name: str, title: str, script: str, body: str) -> None:
    """Put `body` between the markers of `name`, adding a `## title` section with them if RESULTS.md lacks them."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = RESULTS.read_text()
    if begin not in text or end not in text:
        section = f"## {title}\n\n{begin}\n{end}\n\n"
        text = text.replace(BEFORE, section + BEFORE, 1) if BEFORE in text else f"{text.rstrip()}\n\n{section}"
    note = f"<!-- written by `python -m {script}`; edit outside the markers -->"
    block = f"{begin}\n{note}\n\n{body}{end}"
    RESULTS.write_text(re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S))
