"""Refuse, before allocating, a spec whose parameters cannot fit in this machine's memory.

`hidden_units: [100000, 100000]` is ten billion parameters: torch would try to allocate 40 GB and fail with an
allocator error (or the OS would kill the process). The parameter fold knows every block's count without building
anything, so materialize checks the total against the memory available now and names the largest blocks.
"""

from __future__ import annotations

import os

import torch

from perceptspec._errors import SpecError
from perceptspec._fold._params import block_parameters
from perceptspec._fold._shapes import Trace

_LARGEST_SHOWN = 3


def available_memory() -> int | None:
    """Bytes of memory available to allocate now (Linux's MemAvailable), else the physical memory, else None."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_fits_in_memory(t: Trace, available: int | None = None) -> None:
    """Raise `SpecError` if the parameters of `t`'s blocks (in torch's default dtype) need more bytes than are
    available (`available`, default: `available_memory()`)."""
    counts = block_parameters(t)
    itemsize = torch.get_default_dtype().itemsize
    needed = sum(counts.values()) * itemsize
    available = available_memory() if available is None else available
    if available is None or needed <= available:
        return
    largest = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:_LARGEST_SHOWN]
    shown = ", ".join(f"'{path}' {count:,} ({_size(count * itemsize)})" for path, count in largest)
    raise SpecError("materialize", [f"the parameters need {_size(needed)} ({sum(counts.values()):,} parameters of "
                                    f"{itemsize} bytes), more than the {_size(available)} of memory available; "
                                    f"the largest blocks: {shown}"])


def _size(n_bytes: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes} bytes"
