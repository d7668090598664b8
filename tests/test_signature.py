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


MASKED_SHAPES = {"obs": (4,), "legal": (3,)}


def masked(**kwargs: object) -> SpecModule:
    """Logits masked by a legal-action mask: a mask of batch 1 broadcasts against any batch unless checked."""
    return ps.materialize(ps.Graph({
        "logits": ps.LinearOutput(in_keys="obs", out_keys="logits", output_units=3),
        "mask": ps.ActionMasking(in_keys=["logits", "legal"], out_keys="action"),
    }, out_keys="action"), MASKED_SHAPES, seed=0, **kwargs)  # type: ignore[arg-type]  # check=..., deliberately


def mask_inputs(batch: int, mask_batch: int) -> dict[str, torch.Tensor]:
    return {"obs": torch.randn(batch, 4), "legal": torch.ones(mask_batch, 3, dtype=torch.bool)}


BROADCAST_MASK = r"input 'legal': expected leading batch dims \(8,\) like input 'obs', got \(1,\) \(shape \(1, 3\)\)"


class TestDefaultChecksEveryCall:
    def test_default_is_always(self) -> None:
        """Issue #14: with the old default, check='first', a later mask of batch 1 against a batch of 8 broadcast
        silently; the default now checks every call."""
        module = masked()
        assert module.check == "always"
        module(mask_inputs(8, 8))
        with pytest.raises(ps.SignatureError, match=BROADCAST_MASK):
            module(mask_inputs(8, 1))

    def test_first_trusts_later_calls(self) -> None:
        """The documented trade-off of check='first': after a good call, the broadcast goes through."""
        module = masked(check="first")
        module(mask_inputs(8, 8))
        assert module(mask_inputs(8, 1))["action"].shape == (8, 3)


class TestLiveSettings:
    """`check` and `check_finite` of a live module take effect at the next call (the forward is generated again)."""

    def test_check_takes_effect_immediately(self, checker_calls: list[object]) -> None:
        module = masked()
        module.check = "off"
        assert module.check == "off" and "_check" not in module.code
        assert module(mask_inputs(8, 1))["action"].shape == (8, 3)
        assert checker_calls == []
        module.check = "first"
        with pytest.raises(ps.SignatureError, match=BROADCAST_MASK):
            module(mask_inputs(8, 1))
        module(mask_inputs(8, 8))
        module(mask_inputs(8, 1))  # trusted after a good call
        module.check = "always"
        with pytest.raises(ps.SignatureError, match=BROADCAST_MASK):
            module(mask_inputs(8, 1))
        assert "check='always'" in repr(module)

    def test_check_finite_takes_effect_immediately(self) -> None:
        module = masked()
        nan = {"obs": torch.full((2, 4), float("nan")), "legal": torch.ones(2, 3, dtype=torch.bool)}
        assert module(nan)["action"].isnan().any()
        module.check_finite = True
        with pytest.raises(ps.NonFiniteError, match=r"^input 'obs': expected finite values"):
            module(nan)
        module.check_finite = False
        assert module(nan)["action"].isnan().any()

    def test_settings_survive_copies(self) -> None:
        import copy
        import pickle

        module = masked()
        module.check, module.check_finite = "off", True
        for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
            assert (clone.check, clone.check_finite) == ("off", True)
            assert clone(mask_inputs(8, 1))["action"].shape == (8, 3)

    @pytest.mark.parametrize(("name", "value", "message"), [
        ("check", "sometimes", r"SpecModule: check: expected one of \['always', 'first', 'off'\], got 'sometimes'"),
        ("check", None, r"SpecModule: check: expected one of \['always', 'first', 'off'\], got None"),
        ("check_finite", "yes", r"SpecModule: check_finite: expected a bool, got 'yes'"),
    ])
    def test_a_bad_setting_is_refused_and_changes_nothing(self, name: str, value: object, message: str) -> None:
        module = masked()
        code = module.code
        with pytest.raises(ps.SpecError, match=message):
            setattr(module, name, value)
        assert (module.check, module.check_finite, module.code) == ("always", False, code)


# inductor is not needed to see where the checks run: aot_eager traces the same graph without generating code
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
class TestUnderCompile:
    """Issue #14: under torch.compile the checks returned early, so a mask of the wrong batch broadcast silently."""

    @pytest.mark.parametrize("fullgraph", [True, False])
    def test_compiled_module_checks_every_call(self, fullgraph: bool) -> None:
        torch._dynamo.reset()
        module = masked()
        compiled = torch.compile(module, fullgraph=fullgraph, backend="aot_eager")
        for batch in (8, 5):
            inputs = mask_inputs(batch, batch)
            torch.testing.assert_close(compiled(inputs)["action"], module(inputs)["action"])
        with pytest.raises(ps.SignatureError, match=BROADCAST_MASK):
            compiled(mask_inputs(8, 1))
        with pytest.raises(ps.SignatureError, match=r"input 'obs': expected shape \(\*batch, 4\), got shape \(8, 5\)"):
            compiled({"obs": torch.randn(8, 5), "legal": torch.ones(8, 3, dtype=torch.bool)})

    def test_compiled_in_place_checks_every_call_and_follows_its_setting(self) -> None:
        """module.compile() too; assigning check='off' afterwards stops the checks (the forward is recompiled)."""
        torch._dynamo.reset()
        module = masked()
        module.compile(fullgraph=True, backend="aot_eager")
        assert module(mask_inputs(8, 8))["action"].shape == (8, 3)
        with pytest.raises(ps.SignatureError, match=BROADCAST_MASK):
            module(mask_inputs(8, 1))
        module.check = "off"
        assert module(mask_inputs(8, 1))["action"].shape == (8, 3)

    def test_inside_a_compiled_function(self) -> None:
        """Inlined into a larger compiled function, a bad input still raises ours (a graph break runs the
        diagnosis); with fullgraph=True, where no graph break is allowed, Dynamo refuses with our explanation."""
        module = masked()
        inputs = mask_inputs(8, 8)
        for fullgraph in (False, True):
            torch._dynamo.reset()  # Dynamo caches by code object: each mode compiles afresh

            def loss(obs: dict[str, torch.Tensor]) -> torch.Tensor:
                return module(obs)["action"].logsumexp(-1).sum()

            compiled = torch.compile(loss, fullgraph=fullgraph, backend="aot_eager")
            torch.testing.assert_close(compiled(inputs), loss(inputs))
            if not fullgraph:
                with pytest.raises(ps.SignatureError, match=BROADCAST_MASK):
                    compiled(mask_inputs(8, 1))
        with pytest.raises(Exception, match=r"perceptspec: the inputs do not fit the module's signature.*"
                                            r"check='off'") as info:
            compiled(mask_inputs(8, 1))
        assert not isinstance(info.value, ps.SignatureError)  # Dynamo's own refusal, quoting ours
