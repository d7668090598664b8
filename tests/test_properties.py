"""Property tests (issue #7): on random valid specs drawn from every block kind, the folds agree with torch.

- `infer_shapes` gives the shape of every key of a real forward pass (inputs, nested private keys and outputs) on
  random inputs with 0, 1 and 2 extra leading batch dims; `count_parameters` the materialized count; the generated
  forward computes what the reference interpreter computes; finite inputs give finite outputs (masks fully random,
  rows with nothing to attend to included);
- `from_dict(to_dict(s)) == s` (through JSON too), `from_yaml(to_yaml(s)) == s`, pickle, deepcopy and the repr
  (which is the code that builds the spec) round trip, with equal hashes;
- materializing twice with one seed gives identical state dicts, and a state dict saved from one module (through
  `torch.save`) loads into another, which then computes the same.

Example counts come from the Hypothesis profile (`tests/conftest.py`): 100 derandomized examples per property in
`make test`, 2,000 fresh ones in `make test-all`. Besides the random mixtures, every registered block kind is drawn
on its own from a fixed table of recipes (`RECIPE_OF`), so no kind depends on random draws reaching it.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import perceptspec as ps
from perceptspec._fold import trace
from perceptspec._fold._program import input_roles
from perceptspec._torch import SpecModule, run_reference
from perceptspec._torch._walk import every_key
from tests.strategies import (BLOCK_KINDS, MODULE_ATTRIBUTE_NAMES, RECIPE_OF, TINY_MODEL, Case, Shape, batches,
                              blocks_of, finite, random_inputs, valid_cases)

#: examples per block kind for the per-kind properties: a twentieth of the profile's (5 in `make test`)
PER_KIND = settings(max_examples=max(5, settings().max_examples // 20))


def check_fold_matches_forward(case: Case, batch_dims: tuple[Shape, ...], seed: int, float_masks: bool) -> SpecModule:
    """The fold's shapes and parameter count are the forward pass's; returns the module (materialized with `seed`)."""
    spec, in_shapes = case.spec, case.in_shapes
    shapes = ps.infer_shapes(spec, in_shapes)
    module = ps.materialize(spec, in_shapes, seed=seed, check="always")
    assert ps.count_parameters(spec, in_shapes) == sum(p.numel() for p in module.parameters())
    assert input_roles(trace(spec, in_shapes).program) == dict(case.roles)
    module.eval()  # dropout off, batch norm on its running statistics
    for batch in batch_dims:
        inputs = random_inputs(in_shapes, case.roles, batch, seed, float_masks)
        with torch.no_grad():
            outputs = module(inputs)
            env = every_key(module, inputs)
            reference = run_reference(module, inputs)
        assert list(outputs) == list(spec.out_keys)
        assert set(env) == set(shapes), "the fold and the forward pass know different keys"
        for key, value in env.items():
            assert tuple(value.shape) == (*batch, *shapes[key]), (key, batch, tuple(value.shape), shapes[key])
        for key, value in outputs.items():
            torch.testing.assert_close(value, reference[key], msg=lambda m: f"output '{key}': {m}")
            assert value.dtype == torch.float32, (key, value.dtype)
            assert finite(value), f"output '{key}' is not finite for finite inputs"
    return module


@given(valid_cases(), batches(), st.integers(0, 2**16), st.booleans())
def test_fold_matches_forward_and_one_seed_gives_one_state_dict(case: Case, batch_dims: tuple[Shape, ...], seed: int,
                                                                float_masks: bool) -> None:
    """Two properties on each drawn case (drawing and materializing are the cost): the fold agrees with the
    forward pass, and materializing again with the same seed gives the same state dict, which loads elsewhere."""
    module = check_fold_matches_forward(case, batch_dims, seed, float_masks)
    check_seeded_state_dicts(case, seed, module)


KINDS = sorted(BLOCK_KINDS, key=lambda k: k.__name__)


@pytest.mark.parametrize("kind", KINDS, ids=[k.__name__ for k in KINDS])
def test_every_block_kind_folds_as_it_runs_and_round_trips(kind: type[ps.Block]) -> None:
    """Each kind from its own recipe (issue #12): the properties above and below hold for it, whatever the
    random mixtures happen to draw."""
    @PER_KIND
    @given(blocks_of(kind), batches(), st.integers(0, 2**16), st.booleans())
    def run(case: Case, batch_dims: tuple[Shape, ...], seed: int, float_masks: bool) -> None:
        assert type(case.spec) is kind
        module = check_fold_matches_forward(case, batch_dims, seed, float_masks)
        check_seeded_state_dicts(case, seed, module)
        check_round_trips(case.spec)
        check_repr_builds(case.spec)

    run()


# --- serialization, pickling, hashing --------------------------------------------------------------------------------

def assert_same(how: str, copy_: object, spec: ps.Block) -> None:
    assert type(copy_) is type(spec), how
    assert copy_ == spec, f"{how}: {copy_!r}"
    assert hash(copy_) == hash(spec), how


def check_round_trips(spec: ps.Block) -> None:
    data = ps.to_dict(spec)
    assert_same("from_dict(to_dict(s))", ps.from_dict(data), spec)
    assert ps.to_dict(spec) == data, "to_dict must not depend on earlier calls"
    assert_same("from_dict(json)", ps.from_dict(json.loads(json.dumps(data))), spec)
    text = ps.to_yaml(spec)
    assert_same("from_yaml(to_yaml(s))", ps.from_yaml(text), spec)
    assert ps.to_yaml(ps.from_yaml(text)) == text
    assert_same("pickle", pickle.loads(pickle.dumps(spec)), spec)
    assert_same("deepcopy", copy.deepcopy(spec), spec)


def check_repr_builds(spec: ps.Block) -> None:
    """What `@descriptor` promises ("a frozen dataclass whose repr is the code that builds it"): what users paste
    from an error message or a log builds the same spec."""
    assert_same("eval(repr(s))", eval(repr(spec), vars(ps)), spec)  # noqa: S307


@given(valid_cases())
def test_round_trips_and_the_repr_give_equal_specs_with_equal_hashes(case: Case) -> None:
    check_round_trips(case.spec)
    check_repr_builds(case.spec)


# --- seeding and state dicts --------------------------------------------------------------------------------------

def check_seeded_state_dicts(case: Case, seed: int, first: SpecModule) -> None:
    """`first` was materialized with `seed`."""
    spec, in_shapes = case.spec, case.in_shapes
    second = ps.materialize(spec, in_shapes, seed=seed)
    a, b = first.state_dict(), second.state_dict()
    assert list(a) == list(b)
    for name in a:
        assert torch.equal(a[name], b[name]), f"'{name}' differs between two materializations with seed {seed}"
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    other = ps.materialize(spec, in_shapes, seed=seed + 1)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    for name, value in other.state_dict().items():
        assert torch.equal(value, a[name]), name
    first.eval()
    other.eval()
    inputs = random_inputs(in_shapes, case.roles, (2,), seed)
    with torch.no_grad():
        expected, got = first(inputs), other(inputs)
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


# --- the strategies reach everything ------------------------------------------------------------------------------

def run_collecting(strategy: st.SearchStrategy[Case], examples: int, collect: Callable[[Case], Any]) -> None:
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(case: Case) -> None:
        collect(case)

    run()


def missing_parts(kind: type[ps.Block]) -> list[str]:
    """What a block kind lacks of the parts every kind needs (README "Adding a block kind"), each with where it
    goes. Graph, the combinator, is lowered away: it has no rules of its own, only a recipe."""
    from perceptspec._fold._rules import label_rules, param_rules, shape_rules
    from perceptspec._spec._descriptor import _kinds
    from perceptspec._torch._tables import torch_builders

    parts = {
        "a spec class registered with @descriptor and exported as ps.<Kind> (perceptspec/_spec/)":
            _kinds.get(kind.__name__) is kind and getattr(ps, kind.__name__, None) is kind,
        "a test recipe in RECIPE_OF (tests/strategies.py)": kind in RECIPE_OF,
    }
    if kind is not ps.Graph:
        parts.update({
            "a shape rule (perceptspec/_fold/rules/)": shape_rules.get(kind) is not None,
            "a parameter rule (perceptspec/_fold/rules/)": param_rules.get(kind) is not None,
            "a label rule (perceptspec/_fold/rules/)": label_rules.get(kind) is not None,
            "a build rule (perceptspec/_torch/blocks/)": torch_builders.get(kind) is not None,
        })
    return [part for part, present in parts.items() if not present]


def test_every_block_kind_has_a_spec_class_rules_and_a_recipe() -> None:
    """Issue #12: adding a kind without one of its parts fails here, naming the kind and what is missing."""
    import perceptspec._materialize  # noqa: F401  (registers the build rules)

    missing = {k.__name__: parts for k in KINDS if (parts := missing_parts(k))}
    assert not missing, "\n".join(f"block kind '{name}' lacks {', '.join(parts)}" for name, parts in missing.items())
    assert set(RECIPE_OF) == BLOCK_KINDS, "RECIPE_OF has recipes for kinds that are not registered"


def test_a_kind_without_its_parts_is_named_with_what_it_lacks() -> None:
    from perceptspec._spec._descriptor import _kinds

    class Unruled(ps.Block):  # not registered as a descriptor: no rules, no recipe
        pass

    try:
        lacks = missing_parts(Unruled)
    finally:  # subclassing put the kind in the registry: other tests on this worker walk every registered kind
        _kinds.pop("Unruled", None)
    assert len(lacks) == 6 and any("shape rule" in p for p in lacks) and any("build rule" in p for p in lacks)
    assert any("test recipe" in p for p in lacks) and any("@descriptor" in p for p in lacks)


def graph_values(spec: ps.Block) -> list[ps.Graph]:
    """Every Graph in `spec`, itself first, as often as it occurs."""
    if not isinstance(spec, ps.Graph):
        return []
    return [spec] + [g for block in spec.blocks.values() for g in graph_values(block)]


def test_strategies_draw_nesting_sharing_and_several_inputs() -> None:
    facts: set[str] = set()

    def collect(case: Case) -> None:
        spec = case.spec
        if not isinstance(spec, ps.Graph):
            facts.add("bare block")
            return
        nested = [b for b in spec.blocks.values() if isinstance(b, ps.Graph)]
        facts.update({"nested"} if nested else set())
        facts.update({"two levels"} if any(isinstance(c, ps.Graph) for g in nested for c in g.blocks.values())
                     else set())
        graphs = graph_values(spec)[1:]
        facts.update({"one sub-graph value in two places"} if len(graphs) != len(set(graphs)) else set())
        shapes = ps.infer_shapes(spec, case.in_shapes)
        facts.update({"private key named like an outer key"} if any(
            "." in k and k.rsplit(".", 1)[1] in shapes for k in shapes) else set())
        facts.update({"several inputs"} if len(case.in_shapes) > 1 else set())
        facts.update({"mask input"} if "mask" in case.roles.values() else set())
        facts.update({"rank-0 key"} if any(s == () for s in shapes.values()) else set())

    run_collecting(valid_cases(), 200, collect)  # a shared sub-graph value is drawn a few times in 200
    assert facts >= {"bare block", "nested", "two levels", "one sub-graph value in two places",
                     "private key named like an outer key", "several inputs", "mask input", "rank-0 key"}


def test_regression_torch_model_output_of_shape_unit() -> None:
    """Found by test_fold_matches_forward (issue #7): a TorchModel output of shape () per sample, called
    without batch dims, raised `TypeError: reshape() missing 1 required positional arguments` (the wrapper calls
    `reshape(*lead, *shape)` with both empty). Shrunk: TinyModel's second output `y.sum(-1)` on an input (1,)."""
    spec = ps.TorchModel(in_keys="x", out_keys=["y", "total"], module_factory=TINY_MODEL,
                         kwargs={"units": 1, "n_outputs": 2})
    assert ps.infer_shapes(spec, {"x": (1,)})["total"] == ()
    module = ps.materialize(spec, {"x": (1,)}, seed=0)
    assert module({"x": torch.zeros(1)})["total"].shape == ()


# --- names: any valid key or block name -----------------------------------------------------------------------------

@st.composite
def named_cases(draw: st.DrawFn) -> Case:
    """Small graphs whose key and block names are any valid names (non-empty, no '.'): arbitrary text, and the
    attribute names of nn.Module (a critic head named 'values' is plausible)."""
    text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="."), min_size=1, max_size=4)
    names = draw(st.lists(st.one_of(text, st.sampled_from(MODULE_ATTRIBUTE_NAMES)), min_size=8, max_size=8,
                          unique=True))
    return draw(valid_cases(names=names, max_steps=2, max_depth=1))


@given(named_cases(), st.integers(0, 2**16))
def test_any_valid_names_materialize_and_compute_what_the_reference_computes(case: Case, seed: int) -> None:
    """Keys and block names reach the generated forward's source and the module tree: whatever the spec layer
    accepts as a name must work there (or be refused when the spec is built)."""
    check_fold_matches_forward(case, ((), (2,)), seed, float_masks=False)
