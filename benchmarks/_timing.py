"""Interleaved timing: every variant of a case is timed in each round, in a rotating order, so that drift (other
processes on the machine, thermal state, allocator state) hits all variants alike; the result is the median over
rounds of the mean time per call within a round.

Time is the calling thread's CPU time (`time.thread_time`): torch runs on that one thread here
(`torch.set_num_threads(1)`), and time the scheduler gives other processes on a shared machine is not counted, as
wall-clock time would count it (a busy machine preempts a 20 ms sample of one variant and not the next)."""

from __future__ import annotations

import dataclasses
import gc
import statistics
import time
from collections.abc import Callable, Mapping


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per call, one sample per round."""

    samples: tuple[float, ...]
    calls: int

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def time_calls(fn: Callable[[], object], calls: int) -> float:
    """Mean CPU seconds of this thread per call of `calls` back-to-back calls."""
    start = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - start) / calls


#: rounds at most for a `make bench` case: at 15 the median paired ratio of two variants running the same code still
#: moved by ±0.04, enough to read a network at the 1.0 bound as over it; 40 resolve about ±0.015
MAX_ROUNDS = 40


def interleaved(variants: Mapping[str, Callable[[], object]], *, budget: float, sample: float = 0.01,
                min_rounds: int = 3, max_rounds: int = 15, warmup: int = 2,
                estimate: Mapping[str, float] | None = None) -> dict[str, Timing]:
    """Time each variant in `rounds` interleaved rounds; each round gives one sample per variant of about `sample`
    seconds (at least one call). The number of rounds fits `budget` seconds, within [min_rounds, max_rounds].
    `warmup` calls of each variant come first, then one call estimating its time unless `estimate` gives it.

    The garbage collector is off while a round runs (and collects between rounds), as timeit does.
    """
    per_call = dict(estimate or {})
    for name, fn in variants.items():
        for _ in range(warmup):
            fn()
        if name not in per_call:
            per_call[name] = time_calls(fn, 1)
    estimate = per_call
    calls = {name: max(1, round(sample / max(t, 1e-9))) for name, t in estimate.items()}
    round_time = sum(calls[name] * estimate[name] for name in variants)
    rounds = max(min_rounds, min(max_rounds, int(budget / max(round_time, 1e-9))))
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    enabled = gc.isenabled()
    try:
        for r in range(rounds):
            gc.collect()
            gc.disable()
            for name in names[r % len(names):] + names[:r % len(names)]:
                samples[name].append(time_calls(variants[name], calls[name]))
            if enabled:
                gc.enable()
    finally:
        if enabled:
            gc.enable()
    return {name: Timing(tuple(samples[name]), calls[name]) for name in names}


def fmt_time(seconds: float) -> str:
    us = seconds * 1e6
    if us < 100:
        return f"{us:.1f} µs"
    if us < 10_000:
        return f"{us:.0f} µs"
    return f"{us / 1000:.1f} ms" if us < 1_000_000 else f"{us / 1e6:.2f} s"
