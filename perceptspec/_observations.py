"""Observation preprocessing: what the composed networks do to an env's raw observations before the user's network
reads them, as ordinary spec blocks (visible in summaries and drawings, saved with the spec).

Names. A plain space is the key 'observation'; a Dict gives one key per entry; nested Dicts and Tuples are
flattened, their levels joined by '/' ('.' separates the levels of nested graphs, so it cannot be used): Dict
{'agent': Dict{'position': ...}} gives 'agent/position', a Tuple's entries are numbered ('observation/0',
'observation/1', ... for a top-level Tuple, 'inventory/0' inside a Dict entry 'inventory').

Conversions, per flattened entry (`conversion`):
- Box of floats: read as it is (a rank-0 Box as shape (1,), by a Reshape).
- Box of uint8 with bounds [0, 255] and three dims: an image, recognised as SB3 recognises one (`is_image_space`);
  its channel dim is its smallest one, first or last (SB3's `is_image_space_channels_first`; a middle smallest dim is
  refused rather than guessed). It becomes floats in [0, 1] (ToFloat, scale 1/255; 1 with `normalize_images: false`)
  and, when channel-last (H, W, C), channel-first (C, H, W) by a Permute, as every conv block reads images.
- Any other Box of integers or bools, and MultiBinary: floats (ToFloat), shape unchanged.
- Discrete(n): a one-hot vector (n,) (OneHot), or with `discrete: embedding` a learned vector (embedding_dim,).
- MultiDiscrete(nvec): the concatenated one-hot vectors (sum(nvec),), or with `discrete: embedding` one learned
  vector per entry, flattened (len(nvec) * embedding_dim,).

The network function is called with the shapes after conversion, under the observations' names, and its spec reads
those names; the composer then renames what the spec reads to the converted keys ('observation_one_hot',
'observation_image', ...) and adds the conversion blocks, so the composed module reads the raw observations under
the observations' names: integer indices, uint8 pixels, as the env gives them.

Options (the config's `observations` section): `discrete` ('one_hot' or 'embedding'), `embedding_dim` (16),
`normalize_images` (true). Pure: no torch until `module_inputs` runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from perceptspec._core import Shape
from perceptspec._errors import SpecError
from perceptspec._spec import Block, Embedding, Flatten, Graph, OneHot, Permute, Reshape, ToFloat

if TYPE_CHECKING:
    import gymnasium as gym
    import torch

SEPARATOR = "/"  # perceptspec.spaces.KEY_SEPARATOR, which names actions alike
OBSERVATION = "observation"
DISCRETE_ENCODINGS = ("one_hot", "embedding")
FEATURES, INDEX, NUMBER = "features", "index", "number"


@dataclasses.dataclass(frozen=True)
class Options:
    """How observations are converted (the config's `observations` section)."""

    discrete: str = "one_hot"
    embedding_dim: int = 16
    normalize_images: bool = True

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> Options:
        return cls(**(section or {}))  # keys and types are checked by the config schema


@dataclasses.dataclass(frozen=True)
class Conversion:
    """One observation entry: its raw shape and what the run-time check takes of it (`role`: 'features', 'index'
    or 'number'), the blocks that convert it (the first reads the raw key, the last writes `key`), and the shape
    the network reads. No blocks: the network reads the raw key as it is."""

    raw_shape: Shape
    role: str
    blocks: tuple[Block, ...]
    key: str
    shape: Shape


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """The conversions of every observation entry of one or more spaces (sub-steps), by key."""

    conversions: Mapping[str, Conversion]
    options: Options

    def shapes_of(self, space: gym.Space[Any]) -> dict[str, Shape]:
        """The converted shapes of one space's entries (what the network function is given)."""
        return {k: conversion(k, sub, self.options).shape for k, sub in flat_spaces(space).items()}

    def raw_shapes_of(self, space: gym.Space[Any]) -> dict[str, Shape]:
        """The raw shapes of one space's entries (what the composed modules read)."""
        return {k: conversion(k, sub, self.options).raw_shape for k, sub in flat_spaces(space).items()}

    def attach(self, spec: Graph, shapes: Mapping[str, Shape], where: str) -> tuple[Graph, dict[str, Shape]]:
        """`spec` (reading converted observations under the observations' names) as a graph reading the raw
        observations: what it reads of a converted entry is renamed to the converted key, whose blocks join the
        graph. Returns the graph and `shapes` with the raw shapes of the entries it converts."""
        converted = {k: c for k, c in self.conversions.items() if c.blocks and k in spec.in_keys}
        if not converted:
            return spec, dict(shapes)
        taken = _names_in(spec)
        clashes = sorted({b_key for c in converted.values() for b_key in _outputs(c)} & taken)
        if clashes:
            raise SpecError(where, [f"uses the key(s) or block name(s) {clashes}, which the observation conversion "
                                    f"needs for its blocks and outputs; rename them in the spec"])
        renamed = _rename_inputs(spec, {k: c.key for k, c in converted.items()})
        blocks = {**renamed.blocks, **{b.out_keys[0]: b for c in converted.values() for b in c.blocks}}
        graph = Graph(blocks, renamed.out_keys, init=renamed.init)
        return graph, {**shapes, **{k: c.raw_shape for k, c in converted.items()}}


    def conversion_graph(self, shapes: Mapping[str, Shape]) -> tuple[Graph, dict[str, str], dict[str, Shape]] | None:
        """The conversion blocks of the converted observations among `shapes`, as one graph outputting the converted
        keys; the name of the observation each converted key stands for; the raw shapes the graph reads. None when
        none is converted. For a plain `nn.Module` network, which reads converted observations by their names."""
        converted = {k: c for k, c in self.conversions.items() if c.blocks and k in shapes}
        if not converted:
            return None
        blocks = {b.out_keys[0]: b for c in converted.values() for b in c.blocks}
        return (Graph(blocks, [c.key for c in converted.values()]), {c.key: k for k, c in converted.items()},
                {k: c.raw_shape for k, c in converted.items()})


def preprocessing(spaces: Iterable[gym.Space[Any]], options: Options = Options()) -> Preprocessing:
    """The conversions of the observation spaces of all sub-steps. A key in several sub-steps may differ in shape
    only where it is read as it is (each sub-step's network gets its own shapes); a converted one must be converted
    alike, as the composed networks name its conversion by the key."""
    conversions: dict[str, Conversion] = {}
    for space in spaces:
        for key, sub in flat_spaces(space).items():
            converted = conversion(key, sub, options)
            first = conversions.setdefault(key, converted)
            if first != converted and (first.blocks or converted.blocks):
                raise SpecError(f"observation '{key}'", [
                    f"is converted by {_describe(first)} in one sub-step and by {_describe(converted)} in another "
                    f"(the conversion's blocks are named by the key: give the two different names)"])
    return Preprocessing(conversions, options)


def _describe(c: Conversion) -> str:
    return " -> ".join(repr(b) for b in c.blocks) if c.blocks else f"nothing (read as it is, shape {c.raw_shape})"


def flat_spaces(space: gym.Space[Any]) -> dict[str, gym.Space[Any]]:
    """Flattened key -> leaf space (see the module docstring for the names), as actions are named too."""
    from perceptspec.spaces import flatten_space

    return flatten_space(space, OBSERVATION)


def flat_values(space: gym.Space[Any], value: Any) -> dict[str, Any]:
    """An observation of `space` (nested dicts, tuples) flattened to the keys of `flat_spaces`."""
    import gymnasium as gym

    found: dict[str, Any] = {}
    top = [(k, space.spaces[k], value[k]) for k in space.spaces] if isinstance(space, gym.spaces.Dict) \
        else [(OBSERVATION, space, value)]
    stack = list(reversed(top))
    while stack:
        key, sub, v = stack.pop()
        if isinstance(sub, gym.spaces.Dict):
            stack += reversed([(f"{key}{SEPARATOR}{k}", s, v[k]) for k, s in sub.spaces.items()])
        elif isinstance(sub, gym.spaces.Tuple):
            stack += reversed([(f"{key}{SEPARATOR}{i}", s, v[i]) for i, s in enumerate(sub.spaces)])
        else:
            found[key] = v
    return found


def is_image(space: gym.spaces.Box) -> bool:
    """SB3's test for an image: three dims, uint8, every lower bound 0 and every upper bound 255."""
    return len(space.shape) == 3 and space.dtype == np.uint8 and bool(np.all(space.low == 0)) \
        and bool(np.all(space.high == 255))


def conversion(key: str, space: gym.Space[Any], options: Options) -> Conversion:
    """How one observation entry becomes what the network reads (see the module docstring)."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Box):
        shape = tuple(int(d) for d in space.shape)
        if is_image(space):
            return _image(key, shape, options)
        floats = np.issubdtype(space.dtype, np.floating)
        blocks: list[Block] = [] if floats else [ToFloat(in_keys=key, out_keys=f"{key}_float")]
        return _vector_if_scalar(key, shape, FEATURES if floats else NUMBER, blocks)
    if isinstance(space, gym.spaces.MultiBinary):
        shape = tuple(int(d) for d in space.shape)
        return _vector_if_scalar(key, shape, NUMBER, [ToFloat(in_keys=key, out_keys=f"{key}_float")])
    if isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)):
        return _indices(key, space, options)
    raise SpecError(f"observation '{key}'", [
        f"expected a Box, Discrete, MultiDiscrete, MultiBinary, or a Dict or Tuple of these, got {space!r} (convert "
        f"it with a gymnasium observation wrapper)"])


def _image(key: str, shape: Shape, options: Options) -> Conversion:
    channel = int(np.argmin(shape))
    if channel == 1:
        raise SpecError(f"observation '{key}'", [
            f"an image of shape {shape} whose smallest dim is the middle one: neither channel-first (C, H, W) nor "
            f"channel-last (H, W, C); transpose it with a gymnasium observation wrapper"])
    scale = 1 / 255 if options.normalize_images else 1.0
    if channel == 0:
        return Conversion(shape, NUMBER, (ToFloat(in_keys=key, out_keys=f"{key}_image", scale=scale),),
                          f"{key}_image", shape)
    blocks = (ToFloat(in_keys=key, out_keys=f"{key}_float", scale=scale),
              Permute(in_keys=f"{key}_float", out_keys=f"{key}_image", dims=[3, 1, 2]))
    return Conversion(shape, NUMBER, blocks, f"{key}_image", (shape[2], shape[0], shape[1]))


def _vector_if_scalar(key: str, shape: Shape, role: str, blocks: list[Block]) -> Conversion:
    """The conversion ending with `blocks` (the raw key when there are none); a rank-0 entry reshaped to (1,)."""
    last = blocks[-1].out_keys[0] if blocks else key
    if not shape:
        blocks = [*blocks, Reshape(in_keys=last, out_keys=f"{key}_vector", shape=[1])]
        return Conversion(shape, role, tuple(blocks), f"{key}_vector", (1,))
    return Conversion(shape, role, tuple(blocks), last, shape)


def _indices(key: str, space: gym.spaces.Discrete | gym.spaces.MultiDiscrete, options: Options) -> Conversion:
    import gymnasium as gym

    if np.any(space.start != 0):
        raise SpecError(f"observation '{key}'", [
            f"{space!r} starts at {space.start.tolist()}, not 0: one-hot vectors and embeddings index from 0 (shift "
            f"it with a gymnasium observation wrapper)"])
    counts: int | list[int]
    raw: Shape
    if isinstance(space, gym.spaces.Discrete):
        counts, raw = int(space.n), ()
    else:
        counts, raw = [int(n) for n in np.asarray(space.nvec).ravel()], tuple(int(d) for d in space.nvec.shape)
    if len(raw) > 1:
        raise SpecError(f"observation '{key}'", [
            f"{space!r} has nvec of shape {raw}: one-hot vectors are concatenated along one dim of entries; "
            f"reshape it to ({int(np.prod(raw))},) with a gymnasium observation wrapper"])
    if options.discrete == "one_hot":
        block = OneHot(in_keys=key, out_keys=f"{key}_one_hot", num_classes=counts)
        return Conversion(raw, INDEX, (block,), f"{key}_one_hot", (counts if isinstance(counts, int) else sum(counts),))
    dim = options.embedding_dim
    embedding = Embedding(in_keys=key, out_keys=f"{key}_embedding", num_embeddings=counts, embedding_dim=dim)
    if isinstance(counts, int):
        return Conversion(raw, INDEX, (embedding,), f"{key}_embedding", (dim,))
    flat = Flatten(in_keys=f"{key}_embedding", out_keys=f"{key}_embeddings", num_flatten_dims=2)
    return Conversion(raw, INDEX, (embedding, flat), f"{key}_embeddings", (len(counts) * dim,))


def _outputs(c: Conversion) -> set[str]:
    return {b.out_keys[0] for b in c.blocks}


def _names_in(spec: Graph) -> set[str]:
    """Every key and block name used anywhere in `spec`."""
    names: set[str] = set()
    stack: list[Block] = [spec]
    while stack:
        block = stack.pop()
        names.update(block.in_keys, block.out_keys)
        if isinstance(block, Graph):
            names.update(block.blocks)
            stack.extend(block.blocks.values())
    return names


def _rename_inputs(graph: Graph, names: Mapping[str, str]) -> Graph:
    """`graph` reading `names[k]` wherever it reads its input `k` (in nested graphs too: an input of the graph is
    produced nowhere in it, so every read of that name is a read of the input)."""
    blocks: dict[str, Block] = {}
    for name, block in graph.blocks.items():
        inner = {k: v for k, v in names.items() if k in block.in_keys}
        if inner and isinstance(block, Graph):
            block = _rename_inputs(block, inner)
        elif inner:
            block = dataclasses.replace(block, in_keys=[inner.get(k, k) for k in block.in_keys])
        blocks[name] = block
    return Graph(blocks, graph.out_keys, init=graph.init)


def module_inputs(prep: Preprocessing, values: Mapping[str, Any], batch_dims: int = 1) -> dict[str, torch.Tensor]:
    """Flattened observations (arrays or tensors, each with `batch_dims` leading dims) as the composed modules take
    them: each reshaped to its raw shape after the batch dims (SB3 stores a Discrete observation as (1,)) and cast
    as its role needs: indices to int64, features to float32 (SB3's buffers keep every observation as float32),
    numbers (pixels, MultiBinary) as they come."""
    import torch

    inputs = {}
    for key, value in values.items():
        c = prep.conversions[key]
        x = torch.as_tensor(value)
        entry = tuple(x.shape[batch_dims:])
        if entry != c.raw_shape and [d for d in entry if d != 1] != [d for d in c.raw_shape if d != 1]:
            raise SpecError(f"observation '{key}'", [
                f"expected entries of shape {c.raw_shape} (after {batch_dims} batch dim(s)), got {entry}: only "
                f"dims of size 1 are added or dropped (SB3 keeps a Discrete as (1,)), never a layout guessed (an "
                f"image transposed by a wrapper the networks were not composed for)"])
        x = x.reshape(*x.shape[:batch_dims], *c.raw_shape)
        inputs[key] = x.long() if c.role == INDEX else x.float() if c.role == FEATURES else x
    return inputs
