"""How the input checks run under `torch.compile` (issue #14: they returned early while compiling, so a wrong input
broadcast silently).

A checked module's generated `forward` is two functions: `forward` checks the inputs and calls `run_blocks`, which
calls the block modules. `torch.compile(module)` (or `module.compile()`) starts Dynamo at the first frame outside
torch, `forward`; `run_as_frame_boundary` tells Dynamo to run that frame (and the check functions it calls) as plain
Python, so the checks run eagerly, raise our `SignatureError`, and `run_blocks` is the frame Dynamo compiles
(`fullgraph=True` holds: no graph break in it). Inside a larger compiled function Dynamo inlines `forward` instead
and traces the check: good inputs leave no trace in the graph (the checks become guards), a bad one reaches
`diagnose`, which runs outside the graph (`outside_graph`): a graph break that raises our error, or, under
`fullgraph=True`, Dynamo's refusal quoting `BAD_INPUT_UNDER_FULLGRAPH`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])

BAD_INPUT_UNDER_FULLGRAPH = ("perceptspec: the inputs do not fit the module's signature; call the module outside "
                             "torch.compile (or compile with fullgraph=False) to get the SignatureError naming the "
                             "key, or materialize it with check='off' to trust its inputs")


def run_as_frame_boundary(fn: F) -> F:
    """Dynamo runs `fn`'s frame as plain Python when it is the first frame it meets, and compiles the frames `fn`
    calls; called from compiled code, `fn` is still inlined (unlike `torch.compiler.disable`, a graph break)."""
    try:
        from torch._dynamo.eval_frame import skip_code
    except ImportError:  # another torch: the checks are then traced (bad inputs as in a larger compiled function)
        return fn
    skip_code(fn.__code__)
    return fn


def outside_graph(fn: F) -> F:
    """`fn` always runs as plain Python (a graph break when compiled code calls it)."""
    disabled: F = torch.compiler.disable(fn, reason=BAD_INPUT_UNDER_FULLGRAPH)  # type: ignore[no-untyped-call]
    return disabled
