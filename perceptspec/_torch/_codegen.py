"""Spec -> Python source of a flat `forward`, one statement per block (like torch.fx's codegen of `call_module`).

Each statement calls the block's module (through `call`, `perceptspec._torch._call`): the module's `forward` is the
block's one definition, and the generated code only wires keys to modules, as `_walk.walk` does step by step.
Pure string work; turning the source into a function is `compile_forward`'s job, which registers it with
linecache so tracebacks and debuggers show the generated lines (and, for a checked forward, tells torch.compile
where the compiled part starts, `_under_compile`).
"""

from __future__ import annotations

import builtins
import itertools
import keyword
import linecache
import re
import weakref
from collections.abc import Callable
from typing import Any

from perceptspec._fold._rules import label_rules
from perceptspec._fold._shapes import Trace
from perceptspec._torch._under_compile import run_as_frame_boundary

_RESERVED = {"self", "inputs", "named", "_b", "_call", "_check", "_named", "run_blocks", *dir(builtins)}
_counter = itertools.count()


class Namespace:
    """Unique, valid Python names made from keys ('latent.screen' -> 'latent_screen'), as fx's `_Namespace`."""

    def __init__(self) -> None:
        self._used = set(_RESERVED)
        self._next: dict[str, int] = {}  # per base, the suffix to try first: probing stays linear in all

    def create(self, hint: str) -> str:
        # ASCII only: Python folds identifiers by NFKC, so 'ﬁx' and 'fix' would be one variable
        base = re.sub(r"[^0-9A-Za-z_]", "_", hint) or "v"
        if base[0].isdigit() or keyword.iskeyword(base):
            base = f"_{base}"
        n = self._next.get(base, 0)
        name = f"{base}_{n}" if n else base
        while name in self._used:
            n += 1
            name = f"{base}_{n}"
        self._next[base] = n + 1
        self._used.add(name)
        return name


def module_expression(path: str) -> str:
    """The expression reaching a block's module from `_b` (the root's block dict), one level per nested graph."""
    first, *rest = path.split(".")
    return f"_b[{first!r}]" + "".join(f"._modules[{part!r}]" for part in rest)


def forward_source(t: Trace, check: str) -> str:
    """The source of `forward(self, inputs=None, /, **named)` for the traced program (the inputs as one dict, or as
    keyword arguments); `check` is 'always', 'first' or 'off'. A checked forward checks, then calls `run_blocks`
    (the frame `torch.compile` compiles, see `_under_compile`); an unchecked one runs the blocks itself."""
    head = ["def forward(self, inputs=None, /, **named):", "    if named:", "        inputs = _named(inputs, named)"]
    if check == "off":
        return "\n".join(head + block_lines(t)) + "\n"
    if check == "always":
        head.append("    _check(self, inputs)")
    else:
        head += ["    if self._check_pending:", "        _check(self, inputs)"]
    head.append("    return run_blocks(self, inputs)")
    return "\n".join([*head, "", "", "def run_blocks(self, inputs):", *block_lines(t)]) + "\n"


def block_lines(t: Trace) -> list[str]:
    """The body that reads the inputs, calls every block module in program order and returns the out keys."""
    names = Namespace()
    var = {v: names.create(v) for v in t.program.inputs}
    lines = [f"    {var[k]} = inputs[{k!r}]" for k in t.program.inputs]
    lines.append("    _b = self._modules['blocks']._modules")
    for eqn in t.program.eqns:
        ins = ", ".join(var[v] for v in eqn.ins)
        var.update((v, names.create(v)) for v in eqn.outs)
        comment = f"{eqn.path}: {label_rules.lookup(type(eqn.block))(eqn.block, t.ins(eqn))}"
        # escape control characters: a (loaded) block name must not end the comment and become code
        lines.append("    # " + "".join(c if c.isprintable() else repr(c)[1:-1] for c in comment))
        lines.append(f"    {', '.join(var[v] for v in eqn.outs)} = _call({module_expression(eqn.path)}, {ins})")
    outputs = ", ".join(f"{k!r}: {var[k]}" for k in t.program.outputs)  # top-level outputs keep their keys
    lines.append(f"    return {{{outputs}}}")
    return lines


def compile_forward(source: str, global_values: dict[str, Any]) -> Callable[..., Any]:
    """Exec `source` under a unique `<perceptspec-forward-N>` filename, registered in linecache for as long as the
    function lives (tracebacks and debuggers show its lines; thousands of materializations do not pile up there); a
    checked forward (one that calls `run_blocks`) runs as plain Python under torch.compile, which compiles
    `run_blocks`."""
    filename = f"<perceptspec-forward-{next(_counter)}>"
    namespace = dict(global_values)
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102  (our own generated source)
    forward: Callable[..., Any] = namespace.pop("forward")  # (left in its globals, it would keep itself alive)
    # an entry without mtime: linecache.checkcache keeps it; the finalizer drops it with the function
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    weakref.finalize(forward, linecache.cache.pop, filename, None)
    return run_as_frame_boundary(forward) if "run_blocks" in namespace else forward
