"""Tests of the run-time input checks of a materialized module: one `SignatureError` per kind of bad input, naming
the key, what was expected and what came; and when each `check` mode runs the checker."""

from __future__ import annotations

import collections
import re
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch

import perceptspec as ps
import perceptspec._torch._module as torch_module
from perceptspec._torch import SpecModule
from perceptspec._torch._signature import check_inputs

SHAPES = {"a": (4,), "b": (2, 3)}


def spec() -> ps.Graph:
    return ps.Graph([ps.Dense(in_keys="a", out_keys="ha", hidden_units=[3]),
                     ps.LinearOutput(in_keys="b", out_keys="hb", output_units=2)], out_keys=["ha", "hb"])


def make(check: str = "always") -> SpecModule:
    return ps.materialize(spec(), SHAPES, seed=0, check=check)


def good(batch: tuple[int, ...] = (5,)) -> dict[str, torch.Tensor]:
    return {"a": torch.randn(*batch, 4), "b": torch.randn(*batch, 2, 3)}


def outcome(module: SpecModule, inputs: object) -> Exception | None:
    """What calling `module(inputs)` raised, or None."""
    try:
        module(inputs)  # type: ignore[arg-type]  # deliberately anything
    except Exception as e:  # noqa: BLE001  (which error it is is what the tests look at)
        return e
    return None


def all_of(*parts: str) -> str:
    """A pattern matching a message that contains every part, in this order."""
    return "(?s)" + ".*".join(re.escape(p) for p in parts)


# each case: inputs (built fresh per call) and the parts the message must contain, in order: key, expected, got
BAD_INPUTS: dict[str, tuple[Callable[[], object], tuple[str, ...]]] = {
    "missing_key": (lambda: {"a": torch.randn(5, 4)}, ("'b'", "expected", "got", "keys ['a']")),
    "extra_key": (lambda: {**good(), "c": torch.randn(5, 1)}, ("'c'", "expected", "'a'", "'b'", "got")),
    "wrong_trailing_shape": (lambda: {"a": torch.randn(5, 5), "b": torch.randn(5, 2, 3)},
                             ("'a'", "expected", "(*batch, 4)", "got", "(5, 5)")),
    "wrong_trailing_shape_2d": (lambda: {"a": torch.randn(5, 4), "b": torch.randn(5, 3, 2)},
                                ("'b'", "expected", "(*batch, 2, 3)", "got", "(5, 3, 2)")),
    "too_few_dims": (lambda: {"a": torch.randn(5, 4), "b": torch.randn(3)},
                     ("'b'", "expected", "(*batch, 2, 3)", "got", "(3,)")),
    "int64": (lambda: {"a": torch.ones(5, 4, dtype=torch.int64), "b": torch.randn(5, 2, 3)},
              ("'a'", "expected", "float32", "got", "int64")),
    "float64": (lambda: {"a": torch.randn(5, 4), "b": torch.randn(5, 2, 3, dtype=torch.float64)},
                ("'b'", "expected", "float32", "got", "float64")),
    "numpy_array": (lambda: {"a": np.zeros((5, 4), dtype=np.float32), "b": torch.randn(5, 2, 3)},
                    ("'a'", "expected", "Tensor", "got", "ndarray")),
    "list": (lambda: {"a": torch.randn(5, 4), "b": [[0.0] * 3] * 2},
             ("'b'", "expected", "Tensor", "got", "list")),
    "not_a_dict_list": (lambda: [torch.randn(5, 4), torch.randn(5, 2, 3)], ("expected", "dict", "got", "list")),
    "not_a_dict_tensor": (lambda: torch.randn(5, 4), ("expected", "dict", "got", "Tensor")),
    "inconsistent_batch": (lambda: {"a": torch.randn(5, 4), "b": torch.randn(6, 2, 3)},
                           ("'b'", "expected", "(5,)", "'a'", "got", "(6,)")),
    "inconsistent_batch_rank": (lambda: {"a": torch.randn(2, 5, 4), "b": torch.randn(5, 2, 3)},
                                ("'b'", "expected", "(2, 5)", "'a'", "got", "(5,)")),
}


class TestBadInputs:
    def test_error_hierarchy(self) -> None:
        assert issubclass(ps.SignatureError, ps.PerceptSpecError)
        assert not issubclass(ps.SignatureError, ps.SpecError)

    @pytest.mark.parametrize("case", list(BAD_INPUTS))
    @pytest.mark.parametrize("check", ["first", "always"])
    def test_bad_input_raises_signature_error(self, case: str, check: str) -> None:
        make_inputs, parts = BAD_INPUTS[case]
        module = make(check)
        with pytest.raises(ps.SignatureError, match=all_of(*parts)) as info:
            module(make_inputs())  # type: ignore[arg-type]  # deliberately anything
        assert isinstance(info.value, ps.PerceptSpecError)

    def test_not_a_dict_names_the_expected_keys(self) -> None:
        with pytest.raises(ps.SignatureError, match=all_of("'a'", "'b'")):
            make()([torch.randn(5, 4), torch.randn(5, 2, 3)])  # type: ignore[arg-type]  # deliberately wrong

    def test_missing_and_wrong_names_the_missing_key(self) -> None:
        with pytest.raises(ps.SignatureError, match="'b'"):
            make()({"a": torch.randn(5, 4), "B": torch.randn(5, 2, 3)})

    def test_non_str_key(self) -> None:
        with pytest.raises(ps.SignatureError, match=all_of("expected", "str", "got", "int")):
            make()({"a": torch.randn(5, 4), "b": torch.randn(5, 2, 3), 0: torch.randn(5)})  # type: ignore[dict-item]

    def test_zero_dim_tensor(self) -> None:
        with pytest.raises(ps.SignatureError, match=all_of("'a'", "expected", "(*batch, 4)", "got", "()")):
            make()({"a": torch.tensor(1.0), "b": torch.randn(2, 3)})

    @pytest.mark.parametrize("batch", [(), (1,), (2, 3)])
    def test_good_inputs_pass(self, batch: tuple[int, ...]) -> None:
        out = make()(good(batch))
        assert out["ha"].shape == (*batch, 3)
        assert out["hb"].shape == (*batch, 2, 2)

    def test_a_failed_check_does_not_change_the_module(self) -> None:
        module = make()
        inputs = good()
        before = module(inputs)
        with pytest.raises(ps.SignatureError):
            module({"a": torch.randn(5, 5), "b": torch.randn(5, 2, 3)})
        after = module(inputs)
        assert torch.equal(before["ha"], after["ha"])
        assert torch.equal(before["hb"], after["hb"])


@pytest.fixture
def checker_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Count calls of the input checker of modules materialized from now on (it is bound at materialization)."""
    calls: list[object] = []

    def spy(module: SpecModule, inputs: object) -> None:
        calls.append(inputs)
        check_inputs(module, inputs)

    monkeypatch.setattr(torch_module, "check_inputs", spy)
    yield calls


class TestCheckModes:
    def test_first_bad_call_raises(self) -> None:
        module = make("first")
        with pytest.raises(ps.SignatureError, match="'a'"):
            module({"a": torch.randn(5, 5), "b": torch.randn(5, 2, 3)})
        # a failed check is not a passed one: the next call is still checked
        with pytest.raises(ps.SignatureError, match="'b'"):
            module({"a": torch.randn(5, 4)})

    def test_first_stops_checking_after_a_good_call(self) -> None:
        module = make("first")
        module(good())
        bad_shape = outcome(module, {"a": torch.randn(5, 5), "b": torch.randn(5, 2, 3)})
        assert not isinstance(bad_shape, ps.SignatureError)
        assert isinstance(bad_shape, RuntimeError)  # torch's own error from the matmul
        bad_dtype = outcome(module, {"a": torch.randn(5, 4, dtype=torch.float64), "b": torch.randn(5, 2, 3)})
        assert not isinstance(bad_dtype, ps.SignatureError)
        assert isinstance(bad_dtype, RuntimeError)
        # an extra key is simply not read
        assert outcome(module, {**good(), "c": torch.randn(1)}) is None

    def test_first_stops_checking_after_a_good_dict_subclass_call(self) -> None:
        """An OrderedDict of good tensors passes the check (it is a dict), so it is the good first call."""
        module = make("first")
        out = module(collections.OrderedDict(good()))
        assert out["ha"].shape == (5, 3)
        bad_shape = outcome(module, {"a": torch.randn(5, 5), "b": torch.randn(5, 2, 3)})
        assert not isinstance(bad_shape, ps.SignatureError)
        assert isinstance(bad_shape, RuntimeError)

    def test_a_bad_dict_subclass_call_is_caught(self) -> None:
        with pytest.raises(ps.SignatureError, match=all_of("'a'", "(*batch, 4)", "(5, 5)")):
            make("first")(collections.OrderedDict(a=torch.randn(5, 5), b=torch.randn(5, 2, 3)))

    def test_first_runs_the_checker_once(self, checker_calls: list[object]) -> None:
        module = make("first")
        for _ in range(3):
            module(good())
        assert len(checker_calls) == 1

    def test_always_checks_every_call(self, checker_calls: list[object]) -> None:
        module = make("always")
        for _ in range(3):
            module(good())
        assert len(checker_calls) == 3
        for _ in range(2):
            with pytest.raises(ps.SignatureError, match=all_of("'a'", "(*batch, 4)", "(5, 5)")):
                module({"a": torch.randn(5, 5), "b": torch.randn(5, 2, 3)})
        module(good())
        with pytest.raises(ps.SignatureError, match=all_of("'b'", "float32", "float64")):
            module({"a": torch.randn(5, 4), "b": torch.randn(5, 2, 3, dtype=torch.float64)})

    def test_off_never_runs_the_checker(self, checker_calls: list[object]) -> None:
        module = make("off")
        out = module(good())
        assert out["ha"].shape == (5, 3)
        assert "_check" not in module.code
        bad_shape = outcome(module, {"a": torch.randn(5, 5), "b": torch.randn(5, 2, 3)})
        assert isinstance(bad_shape, RuntimeError)
        assert not isinstance(bad_shape, ps.SignatureError)
        missing = outcome(module, {"a": torch.randn(5, 4)})
        assert isinstance(missing, KeyError)
        assert not isinstance(missing, ps.SignatureError)
        assert checker_calls == []

    def test_modes_compute_the_same(self) -> None:
        inputs = good()
        outs = [make(check)(inputs) for check in ("off", "first", "always")]
        for out in outs[1:]:
            assert torch.equal(out["ha"], outs[0]["ha"])
            assert torch.equal(out["hb"], outs[0]["hb"])


class TestAllowExtraKeys:
    """materialize(..., allow_extra_keys=True): a full observation dict may carry keys the spec does not read."""

    def _module(self, check: str) -> torch.nn.Module:
        spec = ps.Dense(in_keys="obs", out_keys="h", hidden_units=[3])
        return ps.materialize(spec, {"obs": (4,)}, seed=0, check=check, allow_extra_keys=True)

    @pytest.mark.parametrize("check", ["always", "first", "off"])
    def test_extra_keys_are_ignored(self, check: str) -> None:
        module = self._module(check)
        out = module({"obs": torch.randn(2, 4), "unused": torch.zeros(7)})
        assert set(out) == {"h"} and out["h"].shape == (2, 3)

    def test_the_keys_it_reads_are_still_checked(self) -> None:
        module = self._module("always")
        with pytest.raises(ps.SignatureError, match=r"input 'obs': expected shape \(\*batch, 4\), got shape \(2, 5\)"):
            module({"obs": torch.randn(2, 5), "unused": torch.zeros(7)})
        with pytest.raises(ps.SignatureError, match="input 'obs': expected this key"):
            module({"unused": torch.zeros(7)})

    def test_pickling_keeps_the_setting(self) -> None:
        import pickle

        clone = pickle.loads(pickle.dumps(self._module("always")))
        assert clone({"obs": torch.randn(4), "unused": torch.zeros(1)})["h"].shape == (3,)
