"""torch's global CPU RNG, for the builds that cannot avoid it: a TorchModel factory initialises its layers from it.

Every other block draws from its own generator (`block_generator`). A factory's layers draw from
`torch.default_generator`, so a seeded build forks it (`torch.random.fork_rng`: the caller's state is restored
afterwards) and seeds the fork. The fork is process-wide, so one lock covers every build that forks or draws from
it: without it, eight threads materializing seeded TorchModels swap each other's weights, and one thread's restore
undoes another's seed. What the lock cannot cover: code of the caller's that draws from torch's global RNG in another
thread while a seeded TorchModel builds draws from the fork (torch has no per-thread default generator).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

#: held while any build forks, seeds or draws from the global CPU RNG (re-entrant: a build may nest another)
GLOBAL_RNG_LOCK = threading.RLock()


@contextlib.contextmanager
def global_rng(seed: int | None) -> Iterator[None]:
    """Hold the global CPU RNG for one build: drawn from as it is (`seed` None: torch's global RNG is the seed), or
    forked and seeded with `seed`, its state restored on leaving."""
    with GLOBAL_RNG_LOCK:
        if seed is None:
            yield
            return
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield


@contextlib.contextmanager
def untouched_global_rng() -> Iterator[None]:
    """Whatever runs inside (a build or a run on the meta device) leaves the global CPU RNG as it was."""
    with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
        yield
