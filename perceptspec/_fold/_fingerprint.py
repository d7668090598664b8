"""`fingerprint`: a spec's identity as a short stable string, for experiment tracking and cache keys."""

from __future__ import annotations

import hashlib

from perceptspec._errors import SpecError
from perceptspec._fold._serialize import to_yaml
from perceptspec._spec import Block


def fingerprint(spec: Block) -> str:
    """The SHA-256 of `spec`'s canonical YAML (`ps.to_yaml(spec)`, UTF-8), as 64 hex digits.

    The YAML holds every block's kind and the fields set to other than their defaults, block names, keys, wiring and
    initialisers, written in one order whatever the process (a Graph's blocks in topological order, ties by name;
    mapping fields by key). So equal specs give equal fingerprints in any process, under any hash seed, on any
    platform, and in later versions unless the spec's YAML changes (a new field with a default is left out). Not
    included: input shapes, weights, seeds and check settings, which are not part of a spec.
    """
    if not isinstance(spec, Block):
        raise SpecError("fingerprint", [f"expected a block or a Graph, got {type(spec).__qualname__}"])
    return hashlib.sha256(to_yaml(spec).encode("utf-8")).hexdigest()
