"""`make bench`: forward-pass microbenchmarks of the seed's four example networks, perceptspec side by side with the
same networks hand-written in plain PyTorch, built from Maze's perception blocks and as tensordict
`TensorDictSequential`s (those two when installed), plus `infer_shapes` against a dummy forward and `materialize`
against building. Writes the tables into benchmarks/RESULTS.md (between the `bench:` markers).

Every variant of a case is timed in the same process, interleaved round by round (see `_timing`), on one torch
thread; the tables give the median time per call and its ratio to hand-written PyTorch. Before timing, every
variant's outputs are checked against the hand-written network's (same weights), and parameter counts are asserted
equal. Options: `--quick` (batches 1 and 32 only, no forward+backward, short budgets; prints, writes nothing),
`--no-compile`, `--default-malloc` (see `steady_allocator`).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import datetime
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

import perceptspec as ps
from benchmarks import _handwritten as hw
from benchmarks import _maze, _tensordict
from benchmarks._attached import AttachedCase, attached_cases, attached_table
from benchmarks._networks import Network, load_examples
from benchmarks._timing import MAX_ROUNDS, Timing, fmt_time, interleaved
from perceptspec._fold._program import lower
from perceptspec._fold._shapes import _trace

RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
HAND, OFF, FIRST, ALWAYS, COMPILED, MAZE, TD = ("hand-written", "perceptspec check='off'",
                                                "perceptspec check='first'", "perceptspec check='always'",
                                                "perceptspec torch.compile", "Maze blocks", "TensorDictSequential")
COLUMNS = (HAND, OFF, FIRST, ALWAYS, COMPILED, MAZE, TD)
SHORT = {HAND: "hand-written", OFF: "ps off", FIRST: "ps first", ALWAYS: "ps always", COMPILED: "ps compiled",
         MAZE: "Maze", TD: "TensorDict"}

Outputs = dict[str, torch.Tensor]
#: inputs -> (the call to time, a reader of the outputs from what the call returns)
Prepare = Callable[[Outputs], tuple[Callable[[], Any], Callable[[Any], Outputs]]]


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    module: nn.Module  # whose parameters the forward+backward differentiates
    prepare: Prepare


@dataclasses.dataclass(frozen=True)
class Case:
    network: Network
    batch: int
    backward: bool
    timings: dict[str, Timing]
    first_call: dict[str, float]  # seconds of each variant's first call (torch.compile's warm-up)

    @property
    def mode(self) -> str:
        return "fwd+bwd" if self.backward else "fwd"

    def ratio(self, variant: str) -> float:
        """The median over rounds of the variant's time over the hand-written time of the same round: paired, so
        that a stretch of load from other processes, which slows a whole round, cancels out."""
        pairs = zip(self.timings[variant].samples, self.timings[HAND].samples)
        return statistics.median(mine / theirs for mine, theirs in pairs)


def module_prepare(module: Callable[[Outputs], Any]) -> Prepare:
    def prepare(inputs: Outputs) -> tuple[Callable[[], Any], Callable[[Any], Outputs]]:
        return (lambda: module(inputs)), (lambda out: out)
    return prepare


class Variants:
    """Builds every network's variants once; Example 3 shares Example 1's perceptspec and Maze modules (the same
    spec), with its own hand-written network (the seed's plain module) and TensorDictSequential over it."""

    def __init__(self, compile_: bool) -> None:
        self.compile = compile_
        self.maze, self.maze_note = _maze.load()
        self.td, self.td_note = _tensordict.load()
        self.shared: dict[tuple[int, str], list[Variant]] = {}
        self.compile_errors: dict[str, str] = {}

    def of(self, net: Network) -> list[Variant]:
        key = (1 if net.example == 3 else net.example, net.role)
        if key not in self.shared:
            self.shared[key] = self._spec_variants(net)
        variants = [Variant(HAND, net.hand, module_prepare(net.hand)), *self.shared[key]]
        if self.td is not None:
            variants.append(Variant(TD, net.hand, self.td.runner(net.hand, list(net.out_keys))))
        order = {name: i for i, name in enumerate(COLUMNS)}
        return sorted(variants, key=lambda v: order[v.name])

    def _spec_variants(self, net: Network) -> list[Variant]:
        variants = []
        for name, check in ((OFF, "off"), (FIRST, "first"), (ALWAYS, "always")):
            module = ps.materialize(net.spec, net.in_shapes, check=check)
            module.load_state_dict(net.weights.state_dict())
            variants.append(Variant(name, module, module_prepare(module)))
            if check == "always" and self.compile:  # the default: its checks run around the compiled graph
                compiled = torch.compile(module, fullgraph=True)
                variants.append(Variant(COMPILED, module, module_prepare(compiled)))
        if self.maze is not None:
            maze_module = self.maze.builder(net.example, net.role)()
            if hw.parameter_count(maze_module) != hw.parameter_count(net.weights):
                raise AssertionError(f"{net.name}: Maze's network has {hw.parameter_count(maze_module)} "
                                     f"parameters, perceptspec's {hw.parameter_count(net.weights)}")
            hw.copy_parameters(net.weights, maze_module)
            variants.append(Variant(MAZE, maze_module, module_prepare(maze_module)))
        return variants


def forward_step(call: Callable[[], Any], read: Callable[[Any], Outputs]) -> Callable[[], Outputs]:
    return lambda: read(call())


def backward_step(call: Callable[[], Any], read: Callable[[Any], Outputs],
                  params: list[nn.Parameter]) -> Callable[[], Outputs]:
    """A forward, then the gradients of the sum of all outputs with respect to `params`; returns the outputs."""
    def step() -> Outputs:
        out = read(call())
        loss = sum(o.sum() for o in out.values())
        assert isinstance(loss, torch.Tensor)
        torch.autograd.grad(loss, params)
        return out
    return step


def run_case(net: Network, variants: list[Variant], batch: int, backward: bool, budget: float,
             variants_cache: Variants) -> Case:
    """Check every variant's outputs against the hand-written network's, then time them interleaved."""
    generator = torch.Generator().manual_seed(batch)
    inputs = net.inputs(batch, generator)
    steps: dict[str, Callable[[], Any]] = {}
    first_call: dict[str, float] = {}
    estimate: dict[str, float] = {}
    reference: Outputs | None = None
    with torch.set_grad_enabled(backward):
        for v in variants:
            call, read = v.prepare(inputs)
            step: Callable[[], Any] = backward_step(call, read, list(v.module.parameters())) if backward else call
            probe = step if backward else forward_step(call, read)
            start = time.perf_counter()
            try:
                out = probe()
            except Exception as e:  # torch.compile failing is a result to report, not a crash
                if v.name != COMPILED:
                    raise
                variants_cache.compile_errors[net.name] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                continue
            first_call[v.name] = estimate[v.name] = time.perf_counter() - start
            if reference is None:
                reference = out
            for key, value in reference.items():
                torch.testing.assert_close(out[key], value, rtol=1e-3, atol=1e-4,
                                           msg=lambda m: f"{net.name}, batch {batch}, {v.name}, '{key}': {m}")
            steps[v.name] = step
            if v.name == COMPILED:  # the first call compiled: time a warm one
                step()
                start = time.perf_counter()
                step()
                estimate[v.name] = time.perf_counter() - start
        # heavy cases (a call over 50 ms) take the estimates above and no more warm-up calls; the budget gives
        # cases of up to ~0.6 s a round about 8 rounds
        heavy = max(estimate.values()) > 0.05
        if heavy:
            budget = min(max(budget, 8 * sum(estimate.values())), 5.0)
        timings = interleaved(steps, budget=budget, sample=0.02, warmup=0 if heavy else 2,
                              estimate=estimate if heavy else None, max_rounds=MAX_ROUNDS)
    return Case(net, batch, backward, timings, first_call)


def steady_allocator() -> str:
    """Make glibc's malloc keep freed memory: what a caching allocator (jemalloc, tcmalloc, PyTorch's CUDA one) does.

    By default glibc serves blocks over its mmap threshold (128 KiB, adapting up to 32 MiB) with mmap and unmaps them
    on free, and trims the heap top: every large activation of an eager forward is page-faulted in again, call after
    call. That cost (half the time of a hand-written Example 2 forward at batch 256 here, and dependent on what the
    process ran before) is the allocator's, not the network's; it would also flatter perceptspec, whose in-place ReLU
    allocates less. Returns a note for the report.
    """
    m_trim_threshold, m_mmap_threshold = -1, -3
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(m_trim_threshold, 1 << 30) == 1 and libc.mallopt(m_mmap_threshold, 1 << 30) == 1
    except (OSError, AttributeError):
        ok = False
    if not ok:
        return "allocator: the platform's default (glibc's mallopt unavailable)"
    return ("allocator: glibc with mallopt(M_MMAP_THRESHOLD = M_TRIM_THRESHOLD = 1 GiB), so freed tensors are reused "
            "rather than unmapped and page-faulted in again (`--default-malloc` keeps glibc's defaults)")


# --- shapes and building -------------------------------------------------------------------------------------------

def clear_fold_caches() -> None:
    """Forget memoised lowerings and traces, so `infer_shapes` / `materialize` run from scratch."""
    lower.cache_clear()
    _trace.cache_clear()


def shape_rows(net: Network, fast_forward: nn.Module, variants: Variants, budget: float) -> list[tuple[str, float]]:
    """infer_shapes (from scratch, memoised) against shape inference by a dummy batch-1 forward."""
    shapes = net.in_shapes

    def infer_cold() -> object:
        clear_fold_caches()
        return ps.infer_shapes(net.spec, shapes)

    def dummy(module: nn.Module) -> Callable[[], dict[str, tuple[int, ...]]]:
        def run() -> dict[str, tuple[int, ...]]:
            with torch.no_grad():
                out = module({k: torch.zeros(1, *s) for k, s in shapes.items()})
            return {k: tuple(v.shape[1:]) for k, v in out.items()}
        return run

    inferred = ps.infer_shapes(net.spec, shapes)
    assert all(inferred[k] == s for k, s in dummy(net.hand)().items())
    fns: dict[str, Callable[[], object]] = {
        "ps.infer_shapes, from scratch (lowering and trace caches cleared)": infer_cold,
        "ps.infer_shapes, memoised (a repeated call)": lambda: ps.infer_shapes(net.spec, shapes),
        "dummy forward, hand-written network (batch-1 zeros, no grad)": dummy(net.hand),
        "dummy forward, perceptspec's generated forward (check='off')": dummy(fast_forward),
    }
    if variants.maze is not None:
        maze_net = variants.maze.builder(net.example, net.role)().perception_net
        out_shapes: Callable[[], object] = getattr(maze_net, "out_shapes")
        fns["Maze: out_shapes() of the InferenceBlock (its dummy forward)"] = out_shapes
    timings = interleaved(fns, budget=budget, sample=0.02)
    return [(name, t.median) for name, t in timings.items()]


def build_rows(net: Network, variants: Variants, budget: float) -> list[tuple[str, float]]:
    """materialize (from scratch and memoised) against building Example 2's policy by hand and with Maze."""
    spec, shapes = net.spec, net.in_shapes

    def materialize_cold() -> object:
        clear_fold_caches()
        return ps.materialize(spec, shapes, seed=0)

    fns: dict[str, Callable[[], object]] = {
        "ps.materialize(seed=0), from scratch (fold caches cleared)": materialize_cold,
        "ps.materialize(seed=0), spec traced before": lambda: ps.materialize(spec, shapes, seed=0),
        "hand-written nn.Module constructor (torch's default init)": lambda: hw.ComplexPolicy(),
    }
    if variants.maze is not None:
        maze = variants.maze
        fns["Maze: blocks, out_shapes() between them, InferenceBlock, normc init"] = lambda: maze.complex("policy")
    timings = interleaved(fns, budget=budget, sample=0.05)
    return [(name, t.median) for name, t in timings.items()]


# --- parameters and buffers ---------------------------------------------------------------------------------------

def memory_rows(networks: Sequence[Network]) -> list[str]:
    """Per network: parameters and bytes of the materialized module and of the hand-written one, and buffers."""
    rows = []
    for net in networks:
        module = ps.materialize(net.spec, net.in_shapes, seed=0)
        mine, theirs = list(module.parameters()), list(net.hand.parameters())
        buffers = list(module.buffers())
        same = (sorted(tuple(p.shape) for p in mine) == sorted(tuple(p.shape) for p in theirs)
                and hw.parameter_count(module) == hw.parameter_count(net.hand))
        state = module.state_dict()
        if not same or buffers or len(state) != len(mine):
            raise AssertionError(f"{net.name}: the materialized module's parameters or buffers differ from the "
                                 f"hand-written network's")
        size = sum(p.numel() * p.element_size() for p in mine)
        rows.append(f"| {net.name} | {hw.parameter_count(module):,} | {len(mine)} | {hw.parameter_count(net.hand):,} "
                    f"| {len(theirs)} | {len(buffers)} | {len(list(net.hand.buffers()))} | {len(state)} "
                    f"| {size / 1024:,.1f} KiB |")
    return rows


# --- report ------------------------------------------------------------------------------------------------------

def case_table(cases: Sequence[Case], columns: Sequence[str]) -> list[str]:
    head = "| network | batch | mode | rounds | " + " | ".join(SHORT[c] for c in columns) + " |"
    lines = [head, "|---|---:|---|---:|" + "---:|" * len(columns)]
    for c in cases:
        cells = []
        for col in columns:
            if col not in c.timings:
                cells.append("—")
            elif col == HAND:
                cells.append(fmt_time(c.timings[col].median))
            else:
                cells.append(f"**{c.ratio(col):.2f}** ({fmt_time(c.timings[col].median)})")
        lines.append(f"| {c.network.name} | {c.batch} | {c.mode} | {len(c.timings[HAND].samples)} | "
                     + " | ".join(cells) + " |")
    return lines


def worst(cases: Sequence[Case], variant: str, batch: int, backward: bool = False) -> tuple[float, str]:
    found = [(c.ratio(variant), c.network.name) for c in cases
             if c.batch == batch and c.backward == backward and variant in c.timings]
    return max(found) if found else (float("nan"), "—")


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def targets(cases: Sequence[Case], shapes: list[tuple[str, float]], builds: list[tuple[str, float]],
            variants: Variants, compiled_examples: set[int], attached: Sequence[AttachedCase]) -> list[str]:
    lines = ["| target | measured | |", "|---|---|---|"]
    for variant, batch, backward, bound in ((FIRST, 1, False, 0.8), (FIRST, 256, False, 1.0),
                                            (FIRST, 256, True, 1.0), (ALWAYS, 1, False, 0.8)):
        ratio, name = worst(cases, variant, batch, backward)
        mode = "forward+backward" if backward else "forward"
        measured, judged = (f"worst {ratio:.2f} ({name})", verdict(ratio <= bound)) if name != "—" else (
            "not run", "—")
        lines.append(f"| {SHORT[variant]} ≤ {bound} × hand-written, batch {batch} {mode}, every network "
                     f"| {measured} | {judged} |")
    if variants.compile:
        ok = compiled_examples == {1, 2, 3, 4} and not variants.compile_errors
        errors = "; ".join(f"{k}: {v}" for k, v in variants.compile_errors.items())
        lines.append(f"| torch.compile(fullgraph=True) on all four examples, no graph break "
                     f"| examples {sorted(compiled_examples)} compiled{', errors: ' + errors if errors else ''} "
                     f"| {verdict(ok)} |")
    shape = dict(shapes)
    cold = shape["ps.infer_shapes, from scratch (lowering and trace caches cleared)"]
    memo = shape["ps.infer_shapes, memoised (a repeated call)"]
    hand = shape["dummy forward, hand-written network (batch-1 zeros, no grad)"]
    ours = shape["dummy forward, perceptspec's generated forward (check='off')"]
    lines.append(f"| infer_shapes ≥ 100× faster than a dummy forward (Example 2) | from scratch {hand / cold:.0f}× "
                 f"(vs perceptspec's own forward {ours / cold:.0f}×); memoised {hand / memo:.0f}× "
                 f"({ours / memo:.0f}×) | {verdict(hand / cold >= 100)} from scratch, "
                 f"{verdict(ours / memo >= 100)} memoised |")
    build = dict(builds)
    mat = build["ps.materialize(seed=0), from scratch (fold caches cleared)"]
    maze_key = "Maze: blocks, out_shapes() between them, InferenceBlock, normc init"
    if maze_key in build:
        lines.append(f"| materialize (Example 2 policy) faster than Maze building it | {fmt_time(mat)} vs "
                     f"{fmt_time(build[maze_key])} ({build[maze_key] / mat:.1f}×) "
                     f"| {verdict(mat < build[maze_key])} |")
    lines.append("| materialized module: exactly the hand-written parameters, no extra buffers | asserted for all "
                 "eight networks (table below) | **met** |")
    if attached:
        worst_attached = max(attached, key=lambda c: c.ratio)
        lines.append(f"| with a forward hook or a parametrization on every Linear and Conv2d, ps first ≤ 1.0 × "
                     f"hand-written with the same, every network | worst {worst_attached.ratio:.2f} "
                     f"({worst_attached.network}, {worst_attached.attachment}, batch {worst_attached.batch}) "
                     f"| {verdict(worst_attached.ratio <= 1.0)} |")
    return lines


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os
    return (f"{platform.machine()} {cpu}, {os.cpu_count()} cores; Python {sys.version.split()[0]}; "
            f"torch {torch.__version__}; torch threads {torch.get_num_threads()} (interop "
            f"{torch.get_num_interop_threads()})")


def report(cases: Sequence[Case], shapes: list[tuple[str, float]], builds: list[tuple[str, float]],
           memory: list[str], variants: Variants, compiled_examples: set[int], allocator: str,
           elapsed: float, attached: Sequence[AttachedCase]) -> str:
    columns = [c for c in COLUMNS if any(c in case.timings for case in cases)]
    notes = [allocator[0].upper() + allocator[1:] + "."]
    if variants.maze is None:
        notes.append(f"Maze skipped: {variants.maze_note}.")
    elif variants.maze_note:
        notes.append(f"Maze: {variants.maze_note}.")
    notes.append(f"TensorDictSequential skipped: {variants.td_note}." if variants.td is None else
                 f"TensorDictSequential: {variants.td_note}; the input TensorDict is built outside the timed call.")
    if not variants.compile:
        notes.append("torch.compile skipped (--no-compile).")
    compile_lines = []
    for c in cases:
        if COMPILED in c.first_call and c.first_call[COMPILED] > 0.5:
            compile_lines.append(f"{c.network.name} batch {c.batch} {c.mode}: {c.first_call[COMPILED]:.1f} s")
    out = [
        f"Machine: {machine()}.",
        f"Run: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, `make bench`, {elapsed / 60:.1f} min in all. "
        "Each cell: **ratio to hand-written** (median over rounds of the ratio within a round) and the median time "
        "per call (the calling thread's CPU time, `time.thread_time`). Interleaved rounds in rotating order; every variant's outputs checked equal to the hand-written "
        "network's first.",
        "",
        *(f"- {n}" for n in notes),
        "",
        "### Targets",
        "",
        *targets(cases, shapes, builds, variants, compiled_examples, attached),
        "",
        "### Forward (no grad) at batch 1, 32, 256 and forward+backward at 256",
        "",
        *case_table(cases, columns),
        "",
        "torch.compile warm-ups (first call at a new batch size or grad mode, compiling included): "
        + ("; ".join(compile_lines) if compile_lines else "none over 0.5 s") + ".",
        "",
        "### With a forward hook or a parametrization on every Linear and Conv2d (forward, no grad)",
        "",
        "Both modules carry the same attachment (a hook returning None; a parametrization returning the weight), so "
        "both pay torch's hook or parametrization machinery on every layer.",
        "",
        *attached_table(attached),
        "",
        "### Shape inference, Example 2 policy",
        "",
        "| method | time | ratio to infer_shapes from scratch |",
        "|---|---:|---:|",
        *(f"| {name} | {fmt_time(t)} | {t / shapes[0][1]:.1f} |" for name, t in shapes),
        "",
        "### Building the network, Example 2 policy",
        "",
        "| method | time | ratio to materialize from scratch |",
        "|---|---:|---:|",
        *(f"| {name} | {fmt_time(t)} | {t / builds[0][1]:.2f} |" for name, t in builds),
        "",
        "### Parameters and buffers",
        "",
        "| network | perceptspec parameters | tensors | hand-written parameters | tensors | perceptspec buffers "
        "| hand-written buffers | state_dict entries | parameter memory |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *memory,
    ]
    return "\n".join(out) + "\n"


def write_results(body: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else f"# Forward-pass benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = f"{text.rstrip()}\n\n{BEGIN}\n{END}\n"
    note = "<!-- written by `make bench` (benchmarks/forward.py); edit outside the markers -->"
    block = f"{BEGIN}\n{note}\n\n{body}{END}"
    RESULTS.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="batches 1 and 32 only, short budgets, write nothing")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--default-malloc", action="store_true", help="keep glibc's default malloc settings")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    allocator = ("allocator: the platform's default (--default-malloc)" if args.default_malloc else
                 steady_allocator())
    print(allocator)
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    networks = load_examples()
    variants = Variants(compile_=not args.no_compile)
    for note in (variants.maze_note, variants.td_note):
        print(note)
    batches = (1, 32) if args.quick else (1, 32, 256)
    budget = 0.6 if args.quick else 5.0
    cases = []
    for net in networks:
        net_variants = variants.of(net)
        runs = [(b, False) for b in batches] + ([] if args.quick else [(256, True)])
        for batch, backward in runs:
            case = run_case(net, net_variants, batch, backward, budget, variants)
            cases.append(case)
            print(*case_table([case], [c for c in COLUMNS if c in case.timings])[2:], sep="\n", flush=True)
    failed = {n.example for n in networks if n.name in variants.compile_errors}
    compiled_examples = {n.example for n in networks} - failed if variants.compile else set()
    by_name = {n.name: n for n in networks}
    example2 = by_name["Example 2 policy"]
    fast = next(v.module for v in variants.of(example2) if v.name == OFF)
    shapes = shape_rows(example2, fast, variants, budget=3.0 if not args.quick else 1.0)
    builds = build_rows(example2, variants, budget=4.0 if not args.quick else 1.0)
    memory = memory_rows(networks)
    attached = attached_cases(networks, (1,) if args.quick else (1, 256), budget)
    print(*attached_table(attached), sep="\n", flush=True)
    body = report(cases, shapes, builds, memory, variants, compiled_examples, allocator,
                  time.perf_counter() - started, attached)
    print(body)
    if not args.quick:
        write_results(body)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
