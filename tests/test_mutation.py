"""Mutation safety (issue #7): specs are values.

Every public spec value (blocks, graphs, initialisers, head biases) rejects assignment and deletion of its fields,
holds only immutable values (tuples, pmaps, strings, numbers, other spec values) all the way down, and keeps no
reference to the lists and dicts it was built from. A materialized module does not let its spec, or what it was
built for, change under it: not through the arguments of `materialize`, not through what the folds return, not
through the kwargs a TorchModel factory receives.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
import torch
from hypothesis import given
from pyrsistent import PMap
from torch import nn

import perceptspec as ps
from perceptspec._spec._descriptor import Descriptor
from tests.strategies import TINY_MODEL, Case, all_field_values, valid_cases

IMMUTABLE = (tuple, PMap, str, int, float, bool, type(None), Descriptor)


def descriptors_in(value: object) -> Iterator[Descriptor]:
    """Every spec value inside `value` (itself included): blocks, graphs, initialisers, biases."""
    return (v for v in all_field_values(value) if isinstance(v, Descriptor))


def init_fields(value: Descriptor) -> list[str]:
    return [f.name for f in dataclasses.fields(value) if f.init]  # type: ignore[arg-type]  # a dataclass


@given(valid_cases())
def test_every_spec_value_rejects_assignment_and_deletion(case: Case) -> None:
    for value in descriptors_in(case.spec):
        for name in [*init_fields(value), "in_keys", "not_a_field"]:
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(value, name, None)
            if hasattr(value, name):
                with pytest.raises(dataclasses.FrozenInstanceError):
                    delattr(value, name)


@given(valid_cases())
def test_every_spec_value_holds_only_immutable_values(case: Case) -> None:
    for value in all_field_values(case.spec):
        assert isinstance(value, IMMUTABLE), f"a {type(value).__name__} inside the spec: {value!r}"
    for graph in (v for v in descriptors_in(case.spec) if isinstance(v, ps.Graph)):
        assert isinstance(graph.in_keys, tuple) and isinstance(graph.topological_order, tuple)


@given(valid_cases())
def test_in_place_changes_of_a_specs_collections_are_refused(case: Case) -> None:
    for value in all_field_values(case.spec):
        if isinstance(value, PMap):
            with pytest.raises(TypeError):
                value["new"] = 1
            if value:
                key = next(iter(value))
                with pytest.raises(TypeError):
                    del value[key]
            assert value.set("new", 1) is not value and "new" not in value  # updates make new maps
        elif isinstance(value, tuple) and value:
            with pytest.raises(TypeError):
                value[0] = value[0]  # type: ignore[index]  # deliberately wrong


def mutate_in_place(data: object) -> None:
    """Change every list and dict inside `data` in place (what a caller may do with what it passed in)."""
    if isinstance(data, list):
        for item in data:
            mutate_in_place(item)
        data.append("junk")
        data.reverse()
    elif isinstance(data, dict):
        for item in list(data.values()):
            mutate_in_place(item)
        data["junk"] = ["junk"]


@given(valid_cases())
def test_a_spec_keeps_no_reference_to_the_lists_and_dicts_it_was_built_from(case: Case) -> None:
    """`from_dict` builds every descriptor from lists and dicts (as users write them): changing those afterwards
    leaves the spec as it was."""
    data = ps.to_dict(case.spec)
    spec = ps.from_dict(data)
    before = (ps.to_yaml(spec), hash(spec))
    mutate_in_place(data)
    assert (ps.to_yaml(spec), hash(spec)) == before
    assert spec == case.spec


def test_building_blocks_from_lists_dicts_and_arrays_copies_them() -> None:
    units, keys, probs = [4, 5], ["obs"], [0.25, 0.75]
    kwargs: dict[str, Any] = {"units": 3, "nested": {"sizes": [1, 2]}}
    out_shapes = [[3]]
    dense = ps.Dense(in_keys=keys, out_keys="h", hidden_units=units)
    head = ps.LinearOutput(in_keys="h", out_keys="a", output_units=2, bias=ps.CategoricalBias(probs))
    model = ps.TorchModel(in_keys="h", out_keys="m", module_factory=TINY_MODEL, kwargs=kwargs, out_shapes=out_shapes)
    blocks: dict[str, ps.Block] = {"dense": dense, "head": head, "model": model}
    graph = ps.Graph(blocks, out_keys=["a", "m"])
    before = ps.to_yaml(graph)
    units.append(6)
    keys[0] = "other"
    probs.reverse()
    kwargs["units"] = 9
    kwargs["nested"]["sizes"].append(3)
    out_shapes[0].append(1)
    blocks["extra"] = dense
    assert ps.to_yaml(graph) == before
    nested = model.kwargs["nested"]
    assert isinstance(nested, Mapping)
    assert (dense.hidden_units, dense.in_keys, nested["sizes"]) == ((4, 5), ("obs",), (1, 2))


def test_building_from_numpy_arrays_copies_them() -> None:
    np = pytest.importorskip("numpy")
    units = np.array([4, 5])
    dense = ps.Dense(in_keys="x", out_keys="y", hidden_units=units)
    units[0] = 99
    assert dense.hidden_units == (4, 5) and all(type(u) is int for u in dense.hidden_units)


def test_regression_a_list_kept_through_a_union_field_can_change_the_spec() -> None:
    """Issue #7: a list given to an `X | Sequence[...]` field that does not normalise (here because of a bool
    inside) was stored as the caller's list, so the 'frozen' spec changed when the caller changed the list (and
    could not be hashed). It must be refused or copied."""
    out_shapes: list[list[Any]] = [[True]]
    try:
        model = ps.TorchModel(in_keys="x", out_keys="y", module_factory=TINY_MODEL, out_shapes=out_shapes)
    except ps.SpecError:
        return
    before = repr(model)
    out_shapes[0].append(5)
    assert repr(model) == before
    hash(model)


# --- the materialized module ----------------------------------------------------------------------------------------

@given(valid_cases())
def test_a_module_keeps_its_spec_and_shapes_whatever_the_caller_changes(case: Case) -> None:
    shapes: dict[str, Any] = {k: list(s) for k, s in case.in_shapes.items()}  # lists, as a caller may pass them
    module = ps.materialize(case.spec, shapes, seed=0)
    spec_yaml, signature, code = ps.to_yaml(module.spec), module.signature, module.code
    mutate_in_place(shapes)
    folded = ps.infer_shapes(case.spec, case.in_shapes)
    expected = dict(folded)
    for key in list(folded):
        folded[key] = (99,)  # what the fold returns is the caller's to change
    assert module.spec == case.spec and ps.to_yaml(module.spec) == spec_yaml
    assert module.signature == signature and module.code == code
    assert module.in_shapes == dict(case.in_shapes)
    assert ps.infer_shapes(case.spec, case.in_shapes) == expected


def test_a_module_s_shape_mappings_cannot_change_what_it_is() -> None:
    """`module.in_shapes` / `out_shapes` describe the module (pickling rebuilds it from `in_shapes`): changing them
    must be refused, or leave the module (and its pickle) as it was. Issue #7: they are plain dicts; after
    `module.in_shapes['x'] = (5,)` a pickle round trip fails with torch's RuntimeError (size mismatch)."""
    module = ps.materialize(ps.Dense(in_keys="x", out_keys="y", hidden_units=[3]), {"x": (4,)}, seed=0)
    for shapes in (module.in_shapes, module.out_shapes):
        try:
            shapes[next(iter(shapes))] = (5,)  # type: ignore[index]  # refused, if it is a read-only mapping
        except TypeError:
            continue
    clone = pickle.loads(pickle.dumps(module))
    assert clone.in_shapes == {"x": (4,)} and clone.out_shapes == {"y": (3,)}
    assert clone({"x": torch.zeros(4)})["y"].shape == (3,)


def test_a_module_s_spec_and_shapes_cannot_be_replaced() -> None:
    """Replacing them wholesale would also make pickling rebuild another module than this one."""
    module = ps.materialize(ps.Dense(in_keys="x", out_keys="y", hidden_units=[3]), {"x": (4,)}, seed=0)
    spec = module.spec
    for name, value in (("spec", ps.Dense(in_keys="x", out_keys="y", hidden_units=[5])), ("in_shapes", {"x": (5,)}),
                        ("out_shapes", {"y": (5,)})):
        with pytest.raises(AttributeError, match="has no setter"):
            setattr(module, name, value)
    clone = pickle.loads(pickle.dumps(module))
    assert clone.spec == spec and clone.in_shapes == {"x": (4,)} and clone.out_shapes == {"y": (3,)}


class MutatingFactory(nn.Module):
    """A factory that changes the kwargs it is given (a user module may pop or edit its config)."""

    def __init__(self, in_shapes: Mapping[str, Sequence[int]], config: dict[str, Any], sizes: Any) -> None:
        super().__init__()
        config["units"] = 99
        config.pop("name")
        ((_, shape),) = in_shapes.items()
        self.linear = nn.Linear(shape[-1], 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(x)
        return out


def test_a_torch_model_factory_cannot_change_the_spec_through_its_kwargs() -> None:
    spec = ps.TorchModel(in_keys="x", out_keys="y", module_factory=f"{__name__}:MutatingFactory",
                         kwargs={"config": {"units": 2, "name": "n"}, "sizes": [1, 2]}, out_shapes=[[2]])
    before = copy.deepcopy(spec)
    ps.materialize(spec, {"x": (3,)}, seed=0)
    ps.materialize(spec, {"x": (3,)}, seed=0)  # the factory sees the spec's kwargs again, not its own edits
    assert spec == before and spec.kwargs["config"] == {"units": 2, "name": "n"}


def test_loading_weights_or_training_leaves_the_spec_alone() -> None:
    spec = ps.Graph({"h": ps.Dense(in_keys="x", out_keys="y", hidden_units=[3], init=ps.NormC(1.0))}, "y")
    before = ps.to_yaml(spec)
    module = ps.materialize(spec, {"x": (4,)}, seed=0)
    module.load_state_dict(ps.materialize(spec, {"x": (4,)}, seed=1).state_dict())
    torch.autograd.backward(module({"x": torch.ones(2, 4)})["y"].sum())
    torch.optim.SGD(module.parameters(), lr=0.1).step()
    assert ps.to_yaml(module.spec) == before and module.spec == spec
