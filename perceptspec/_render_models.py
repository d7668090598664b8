"""Drawings of composed models: the policy, the critic, and both side by side as the actor-critic computes them.

Everything is drawn from what `compose` already worked out (`models.specs`, `models.in_shapes`), by the shape fold:
no tensor is created and torch is not imported here. In the actor-critic picture the observations are drawn once,
the policy and the critic are clusters, and a key the policy computes for the critic (a shared embedding, seed
Example 4's `latent_screen`) leaves its one producing block with highlighted edges into both networks. A network
written as a plain torch module (seed Example 3) has no blocks to show: it is drawn as one box with its parameter
count, between the observations it reads and the outputs the composer expects of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import graphviz

from perceptspec._errors import SpecError
from perceptspec._fold._params import block_parameters
from perceptspec._fold._render import FORMATS, Picture, parameters_text, write
from perceptspec._core import Shape
from perceptspec._fold._shapes import Trace, trace
from perceptspec._spec import Block

if TYPE_CHECKING:
    from torch import nn

    from perceptspec._composer import ComposedSpecs, Models

VALUE_KEY = "value"


@dataclasses.dataclass(frozen=True)
class Network:
    """One network of composed models, as the drawings need it: a traced spec, or an opaque module."""

    name: str  # 'policy', 'critic', 'policy[0]'
    in_shapes: dict[str, Shape]
    out_shapes: dict[str, Shape]
    n_params: int
    trace: Trace | None  # None: a plain torch module
    description: str  # what an opaque module is


def render_models(models: Models | ComposedSpecs, directory: str | Path, format: str | Sequence[str] = "svg") -> list[Path]:
    """Draw composed models into `directory`: `policy.svg`, `critic.svg` and `actor_critic.svg` (both
    networks in one picture, shared keys drawn once). With sub-steps the names carry the step (`policy_0.svg`).

    Arguments:
        models: what `compose` returned (or the command line's `compose_specs`: the same drawings, no torch).
        directory: where to write (created if missing).
        format: 'svg', 'png', 'pdf' or 'dot', or several of them (each drawing is written in each).

    Returns:
        The files written. Without graphviz's `dot` program, .dot files, with a note on installing graphviz.

    Examples:
        >>> import gymnasium as gym
        >>> env = gym.make("CartPole-v1")
        >>> models = ps.compose("perceptspec/examples/cartpole.yaml", env.observation_space, env.action_space)
        >>> [p.name for p in ps.render_models(models, "drawings", format="dot")]
        ['policy.dot', 'critic.dot', 'actor_critic.dot']
    """
    formats = [format] if isinstance(format, str) else list(format)
    for f in formats:
        if f".{f.lower().lstrip('.')}" not in FORMATS:
            raise SpecError("render_models", [f"format: unsupported format {f!r}; expected one of "
                                              f"{', '.join(s[1:] for s in FORMATS)}"])
    directory = Path(directory)
    drawings = {directory / f"{stem}.{f.lower().lstrip('.')}": dot
                for stem, dot in models_to_dot(models).items() for f in formats}
    return write(drawings)


def models_to_dot(models: Models | ComposedSpecs) -> dict[str, graphviz.Digraph]:
    """The drawings of `render_models` by file stem ('policy', 'critic', 'actor_critic'), as graphviz Digraphs."""
    drawings: dict[str, graphviz.Digraph] = {}
    for policy, critic in _pairs(models):
        shared = [k for k in critic.in_shapes if k in policy.out_shapes] if critic is not None else []
        if _stem(policy.name) not in drawings:
            drawings[_stem(policy.name)] = _single(policy, outputs={k: "to the critic" for k in shared})
        if critic is not None and _stem(critic.name) not in drawings:
            drawings[_stem(critic.name)] = _single(critic, inputs={k: "from the policy" for k in shared})
        if critic is not None:
            stem = _stem(policy.name.replace("policy", "actor_critic", 1))
            drawings[stem] = _joint(stem, policy, critic)
    return drawings


def _pairs(models: Models | ComposedSpecs) -> list[tuple[Network, Network | None]]:
    """(policy, critic) per sub-step; a shared critic pairs with every step's policy."""
    steps = list(models.policies)
    pairs = []
    for step in steps:
        name = "policy" if len(steps) == 1 else f"policy[{step}]"
        policy = _network(models, name, models.policies[step], models.action_logits_shapes[step])
        critic = None
        if models.critics:
            critic_step = step if step in models.critics else next(iter(models.critics))
            critic_name = "critic" if len(models.critics) == 1 else f"critic[{critic_step}]"
            critic = _network(models, critic_name, models.critics[critic_step], {VALUE_KEY: (1,)})
        pairs.append((policy, critic))
    return pairs


def _network(models: Models | ComposedSpecs, name: str, module: nn.Module | None,
             heads: Mapping[str, Shape]) -> Network:
    spec = models.specs.get(name)
    in_shapes = dict(models.in_shapes[name])
    if isinstance(spec, Block):
        t = trace(spec, in_shapes)
        out_shapes = {k: t.shapes[k] for k in t.program.outputs}
        return Network(name, in_shapes, out_shapes, sum(block_parameters(t).values()), t, "")
    assert module is not None, "a network without a spec is a plain module"
    n_params = sum(p.numel() for p in module.parameters())
    return Network(name, in_shapes, dict(heads), n_params, None, f"{type(module).__name__} (plain torch module)")


def _stem(name: str) -> str:
    """A file stem from a network name: 'policy[0]' -> 'policy_0'."""
    return name.replace("[", "_").replace("]", "")


def _draw(picture: Picture, network: Network, sources: Mapping[str, str], total: int, cluster: bool,
          shared: Sequence[str] = ()) -> dict[str, str]:
    if network.trace is not None:
        return picture.spec(network.trace, sources, total=total, network=network.name if cluster else None,
                            shared=shared)
    return picture.module(network.name, network.description, network.n_params, total, network.in_shapes,
                          network.out_shapes, sources, cluster=cluster, shared=shared)


def _single(network: Network, inputs: Mapping[str, str] | None = None,
            outputs: Mapping[str, str] | None = None) -> graphviz.Digraph:
    """One network alone; `inputs`/`outputs` note keys shared with the other network ('from the policy')."""
    picture = Picture(_stem(network.name), f"{network.name}: {parameters_text(network.n_params)}")
    sources = picture.inputs(network.in_shapes, inputs)
    produced = _draw(picture, network, sources, network.n_params, cluster=False)
    picture.outputs(network.out_shapes, {**sources, **produced}, outputs)
    return picture.finish()


def _joint(stem: str, policy: Network, critic: Network) -> graphviz.Digraph:
    """Policy and critic side by side: observations once, the keys the policy shares with the critic once."""
    shared = [k for k in critic.in_shapes if k in policy.out_shapes]
    total = policy.n_params + critic.n_params
    title = f"actor-critic: {parameters_text(total)} (policy {policy.n_params:,} + critic {critic.n_params:,})"
    if shared:
        keys = ", ".join(shared).replace("\\", "\\\\")  # the title is an escString: '\\n' breaks the line
        title += f"\\n{keys}: computed once by the policy, read by both (highlighted edges)"
    picture = Picture(stem, title)
    observations = {**policy.in_shapes, **{k: s for k, s in critic.in_shapes.items() if k not in shared}}
    sources = picture.inputs(observations)
    from_policy = _draw(picture, policy, sources, total, cluster=True, shared=shared)
    from_critic = _draw(picture, critic, {**sources, **{k: from_policy[k] for k in shared}}, total, cluster=True,
                        shared=shared)
    outputs = {**{k: s for k, s in policy.out_shapes.items() if k not in shared}, **critic.out_shapes}
    picture.outputs(outputs, {**sources, **from_policy, **from_critic})
    return picture.finish()
