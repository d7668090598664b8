"""`python -m benchmarks.scale`: how perceptspec's costs grow with the size of a spec (issue #14).

Three shapes of spec: a *chain* of N Dense blocks, each reading the previous one's key; a *wide* graph of N Dense
blocks all reading one input, concatenated by one Concat; and a *deep* spec, N Graphs each containing the next,
around one Dense. For 100, 1,000 and 10,000 blocks (deep: 100 and 1,000 levels), each step is timed once, from cold
caches (lowering and shape tracing are memoised per spec): building the spec, `infer_shapes`, `to_yaml` then
`from_yaml`, `materialize`, and the first forward call at batch 32. Targets (issue #14): a 10,000-block chain builds
in under 2 s and materializes in under 15 s. Writes its table into benchmarks/RESULTS.md between the `scale:`
markers; `--quick` stops at 1,000 blocks and writes nothing.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

import perceptspec as ps
from benchmarks._results import write_section
from perceptspec._fold._program import lower
from perceptspec._fold._shapes import _trace

STEPS = ("build", "infer_shapes", "to_yaml + from_yaml", "materialize", "first forward (batch 32)")
TARGETS = {("chain", 10_000, "build"): 2.0, ("chain", 10_000, "materialize"): 15.0}
UNITS = 4
T = TypeVar("T")


def chain(n: int) -> ps.Block:
    blocks = {f"d{i}": ps.Dense(in_keys="x" if i == 0 else f"h{i - 1}", out_keys=f"h{i}", hidden_units=[UNITS])
              for i in range(n)}
    return ps.Graph(blocks, out_keys=f"h{n - 1}")


def wide(n: int) -> ps.Block:
    blocks: dict[str, ps.Block] = {f"d{i}": ps.Dense(in_keys="x", out_keys=f"h{i}", hidden_units=[UNITS])
                                   for i in range(n - 1)}
    blocks["cat"] = ps.Concat(in_keys=[f"h{i}" for i in range(n - 1)], out_keys="cat", concat_dim=-1)
    return ps.Graph(blocks, out_keys="cat")


def deep(n: int) -> ps.Block:
    spec: ps.Block = ps.Dense(in_keys="x", out_keys="y", hidden_units=[UNITS])
    for _ in range(n):
        spec = ps.Graph({"g": spec}, out_keys="y")
    return spec


CASES: dict[str, tuple[Callable[[int], ps.Block], tuple[int, ...]]] = {
    "chain": (chain, (100, 1_000, 10_000)),
    "wide": (wide, (100, 1_000, 10_000)),
    "deep": (deep, (100, 1_000)),
}


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """The result of `fn()` and its seconds, run once from cold caches with the garbage collector off."""
    lower.cache_clear()
    _trace.cache_clear()
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        result = fn()
        return result, time.perf_counter() - start
    finally:
        gc.enable()


def measure(make: Callable[[int], ps.Block], n: int) -> list[float]:
    spec, build = timed(lambda: make(n))
    shapes = {"x": (UNITS,)}
    _, infer = timed(lambda: ps.infer_shapes(spec, shapes))
    loaded, yaml_time = timed(lambda: ps.from_yaml(ps.to_yaml(spec)))
    assert loaded == spec
    module, materialize = timed(lambda: ps.materialize(spec, shapes, seed=0))
    with torch.no_grad():
        _, forward = timed(lambda: module({"x": torch.randn(32, UNITS)}))
    return [build, infer, yaml_time, materialize, forward]


def seconds(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def table(rows: list[tuple[str, int, list[float]]]) -> str:
    lines = ["| spec | blocks | " + " | ".join(STEPS) + " |", "|---|---:|" + "---:|" * len(STEPS)]
    for case, n, times in rows:
        cells = []
        for step, t in zip(STEPS, times):
            target = TARGETS.get((case, n, step))
            cells.append(seconds(t) + (f" (target < {target:.0f} s{'' if t < target else ', MISSED'})"
                                       if target is not None else ""))
        lines.append(f"| {case} | {n:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="up to 1,000 blocks; print, write nothing")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ps.materialize(chain(2), {"x": (UNITS,)})  # warm up: the first materialize imports the torch layer
    rows = []
    for case, (make, sizes) in CASES.items():
        for n in sizes:
            if args.quick and n > 1_000:
                continue
            times = measure(make, n)
            print(f"{case:>5} {n:>6,}: " + ", ".join(f"{s} {seconds(t)}" for s, t in zip(STEPS, times)), flush=True)
            rows.append((case, n, times))
    machine = (f"{platform.machine()} {platform.processor() or 'cpu'}; Python {sys.version.split()[0]}; "
               f"torch {torch.__version__}, 1 thread")
    body = (f"Machine: {machine}. Run: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}. Each step once, "
            f"from cold caches; Dense blocks of {UNITS} units.\n\n{table(rows)}")
    if not args.quick:
        write_section("scale", "Scale (issue #14)", "benchmarks.scale", body)
    print(body)


if __name__ == "__main__":
    main()
