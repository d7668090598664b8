"""Room on the call stack for the few places where code that is not ours recurses once per level of a spec's
nesting: PyYAML's pure-Python composer (which reads what libyaml refuses: documents nested over 1,000 levels) and
torch's `nn.Module` methods (`modules()`, `state_dict()`, `load_state_dict()`, `train()`, `repr`), which recurse
once per level of submodules (block modules nest like the spec's graphs). Everything perceptspec does itself is
iterative.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def recursion_room(frames: int) -> Iterator[None]:
    """Raise the recursion limit by `frames` while the block runs, then restore it.

    The limit is per process, so this is scoped as tightly as the call that needs it. Python 3.11 runs
    Python-to-Python calls without growing the C stack, so the higher limit does not risk overflowing it.
    """
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + frames)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)
