"""Issue #14: a spec, a config or the command line runs no code outside the allow-list (docs/security.md).

The payloads are the issue's: a TorchModel factory 'os:system' with a shell command, `subprocess` targets, a
`_target_` whose mere import has side effects. Each is refused before anything is imported: no file written, no
module in `sys.modules`.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import perceptspec as ps
from perceptspec.cli import main

CARTPOLE_POLICY = "perceptspec.examples.cartpole.cartpole_policy"
CARTPOLE_CRITIC = "perceptspec.examples.cartpole.cartpole_critic"


def spaces() -> tuple[gym.spaces.Box, gym.spaces.Discrete]:
    return gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(2)


def torch_model(path: str, **kwargs: Any) -> ps.TorchModel:
    return ps.TorchModel(in_keys="o", out_keys="h", module_factory=path, kwargs=kwargs)


FOLDS: dict[str, Callable[[ps.Block], object]] = {
    "infer_shapes": lambda spec: ps.infer_shapes(spec, {"o": (4,)}),
    "count_parameters": lambda spec: ps.count_parameters(spec, {"o": (4,)}),
    "summary": lambda spec: ps.summary(spec, {"o": (4,)}),
    "materialize": lambda spec: ps.materialize(spec, {"o": (4,)}),
}


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def module_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on sys.path for modules written by a test (removed, with the modules, afterwards)."""
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write_module(folder: Path, name: str, source: str) -> None:
    (folder / f"{name}.py").write_text(source)


# --- the payloads -------------------------------------------------------------------------------------------

class TestPayloads:
    @pytest.mark.parametrize("fold", list(FOLDS))
    @pytest.mark.parametrize("path, kwargs", [
        ("os:system", {"command": "touch {marker}"}),
        ("subprocess:run", {"args": "touch {marker}", "shell": True}),
        ("posix.system", {"command": "touch {marker}"}),
    ])
    def test_a_factory_that_would_run_a_shell_command(self, fold: str, path: str, kwargs: dict[str, Any],
                                                      marker: Path) -> None:
        spec = ps.from_yaml(ps.to_yaml(torch_model(path, **{k: str(v).format(marker=marker) if isinstance(v, str)
                                                             else v for k, v in kwargs.items()})))
        with pytest.raises(ps.NotAllowedError, match=rf"field 'module_factory' \('{path}'\): module '\w+' is not "
                                                     rf"allowed.*ps\.allow\('\w+'\)") as info:
            FOLDS[fold](spec)
        assert info.value.path == path
        assert not marker.exists()

    def test_rendering_does_not_run_the_factory(self, marker: Path, tmp_path: Path) -> None:
        spec = torch_model("os:system", command=f"touch {marker}")
        with pytest.raises(ps.NotAllowedError):
            ps.render(spec, {"o": (4,)}, tmp_path / "drawing.dot")
        assert not marker.exists()

    def test_a_critic_target_that_would_start_a_shell(self, marker: Path) -> None:
        config = {"policy": {"networks": [{"_target_": CARTPOLE_POLICY}]},
                  "critic": {"networks": [{"_target_": "subprocess.Popen", "args": f"touch {marker}", "shell": True,
                                           "executable": "/bin/bash", "env": {"BASH_ENV": str(marker)}}]}}
        with pytest.raises(ps.NotAllowedError, match=r"_target_ 'subprocess.Popen': module 'subprocess' is not "
                                                     r"allowed"):
            ps.compose(config, *spaces())
        assert not marker.exists()

    def test_a_target_whose_import_has_side_effects_is_not_imported(self) -> None:
        assert "this" not in sys.modules
        config = {"policy": {"networks": [{"_target_": "this.s"}]}}
        with pytest.raises(ps.NotAllowedError, match=r"module 'this' is not allowed"):
            ps.compose(config, *spaces())
        assert "this" not in sys.modules

    def test_the_command_line_refuses_it_too(self, tmp_path: Path, marker: Path) -> None:
        config = tmp_path / "evil.yaml"
        config.write_text(f"""
policy:
  networks:
    - _target_: {CARTPOLE_POLICY}
critic:
  networks:
    - _target_: subprocess.Popen
      args: touch {marker}
      shell: true
""")
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = main(["check", str(config), "--env", "CartPole-v1"])
        assert status == 1
        assert "NotAllowedError: _target_ 'subprocess.Popen': module 'subprocess' is not allowed" in err.getvalue()
        assert "--allow subprocess" in err.getvalue()
        assert not marker.exists()


# --- what is allowed, and how it is allowed ----------------------------------------------------------------------

class TestAllowList:
    def test_a_module_is_not_imported_until_allowed(self, module_dir: Path, marker: Path) -> None:
        write_module(module_dir, "trusted_nets", f"""
import pathlib
pathlib.Path({str(marker)!r}).write_text("imported")
from torch import nn
def mlp(width):
    return nn.Linear(4, width)
""")
        spec = torch_model("trusted_nets:mlp", width=3)
        with pytest.raises(ps.NotAllowedError, match="ps.allow\\('trusted_nets'\\)"):
            ps.count_parameters(spec, {"o": (4,)})
        assert "trusted_nets" not in sys.modules and not marker.exists()
        with ps.allow("trusted_nets"):
            assert ps.count_parameters(spec, {"o": (4,)}) == 4 * 3 + 3
            assert "trusted_nets" in ps.allowed_modules()
        assert marker.read_text() == "imported"
        assert "trusted_nets" not in ps.allowed_modules()
        with pytest.raises(ps.NotAllowedError):  # the allowance ended with the block
            ps.materialize(spec, {"o": (4,)})

    def test_allowing_a_package_allows_its_submodules_only(self, module_dir: Path) -> None:
        (module_dir / "mypkg" / "nets").mkdir(parents=True)
        for init in ("mypkg/__init__.py", "mypkg/nets/__init__.py", "mypkg_other.py"):
            (module_dir / init).write_text("from torch import nn\ndef mlp():\n    return nn.Linear(4, 2)\n")
        (module_dir / "mypkg" / "nets" / "vision.py").write_text((module_dir / "mypkg_other.py").read_text())
        with ps.allow("mypkg.nets"):
            for path in ("mypkg.nets.vision:mlp", "mypkg.nets.vision.mlp", "mypkg.nets:mlp"):
                assert ps.count_parameters(torch_model(path), {"o": (4,)}) == 10
            for path in ("mypkg:mlp", "mypkg_other:mlp"):  # the parent package's code, a look-alike name
                with pytest.raises(ps.NotAllowedError):
                    ps.count_parameters(torch_model(path), {"o": (4,)})

    def test_a_function_an_allowed_module_imported_from_elsewhere_is_refused(self, module_dir: Path,
                                                                              marker: Path) -> None:
        write_module(module_dir, "reexports", "import os\nfrom os import system\nfrom torch import nn\n")
        with ps.allow("reexports"):
            for path, problem in (("reexports:system", "it names a function defined in 'posix'"),
                                  ("reexports:os.system", "it reaches module 'os'"),
                                  ("reexports:nn.functional.relu", "it reaches module 'torch.nn.functional'")):
                with pytest.raises(ps.NotAllowedError, match=problem):
                    ps.count_parameters(torch_model(path, command=f"touch {marker}"), {"o": (4,)})
        assert not marker.exists()

    @pytest.mark.parametrize("path", ["torch.nn.Linear", "torch.nn:Linear", "torch.nn.modules.linear:Linear"])
    def test_torch_layer_classes_are_allowed(self, path: str) -> None:
        spec = torch_model(path, in_features=4, out_features=2)
        assert ps.count_parameters(spec, {"o": (4,)}) == 10

    @pytest.mark.parametrize("path, problem", [
        ("torch:load", "a function defined in 'torch.serialization'"),
        ("torch.hub:load", "module 'torch.hub' is not allowed"),
        ("torch.nn.functional:relu", "module 'torch.nn.functional' is not allowed"),
        ("torch.nn.modules.module:register_module_forward_hook", "a function defined in 'torch.nn.modules.module'"),
        ("torch:_dynamo.reset", "'torch' has no attribute '_dynamo'|it reaches module 'torch._dynamo'"),
        ("perceptspec.cli:main", "module 'perceptspec.cli' is not allowed"),
        ("builtins:eval", "module 'builtins' is not allowed"),
    ])
    def test_the_rest_of_torch_and_perceptspec_is_not(self, path: str, problem: str) -> None:
        with pytest.raises(ps.SpecError, match=problem):
            ps.count_parameters(torch_model(path), {"o": (4,)})

    def test_allowances_count(self) -> None:
        first, second = ps.allow("counted_nets"), ps.allow("counted_nets")
        first.revoke()
        assert "counted_nets" in ps.allowed_modules()
        first.revoke()  # revoking twice is a no-op
        assert "counted_nets" in ps.allowed_modules()
        second.revoke()
        assert "counted_nets" not in ps.allowed_modules()

    def test_compose_allows_for_the_call_only(self, module_dir: Path) -> None:
        write_module(module_dir, "team_policies", f"""
from perceptspec.examples.cartpole import cartpole_policy as _policy
def policy(obs_shapes, action_logits_shapes):
    return _policy(obs_shapes, action_logits_shapes)
""")
        config = {"policy": {"networks": [{"_target_": "team_policies.policy"}]}}
        models = ps.compose(config, *spaces(), allow=["team_policies"])
        assert models.specs["policy"] is not None
        assert "team_policies" not in ps.allowed_modules()
        with pytest.raises(ps.NotAllowedError):
            ps.compose(config, *spaces())

    def test_a_call_allowance_stays_in_its_thread(self) -> None:
        from perceptspec._trust import allowing

        seen: list[tuple[str, ...]] = []
        with allowing(["thread_local_nets"], "test"):
            assert "thread_local_nets" in ps.allowed_modules()
            other = threading.Thread(target=lambda: seen.append(ps.allowed_modules()))
            other.start()
            other.join()
        assert "thread_local_nets" not in seen[0]

    @pytest.mark.parametrize("bad", ["my models", "nets.py/x", "", "1abc", 3])
    def test_allow_takes_module_names(self, bad: Any) -> None:
        with pytest.raises(ps.SpecError, match="expected module names such as 'mypkg.nets'"):
            ps.allow(bad)
        with pytest.raises(ps.SpecError, match="expected module names"):
            ps.compose({"policy": {"networks": [{"_target_": CARTPOLE_POLICY}]}}, *spaces(), allow=[bad])

    def test_the_command_line_allows_with_allow(self, module_dir: Path, tmp_path: Path) -> None:
        write_module(module_dir, "cli_policies", f"""
from perceptspec.examples.cartpole import cartpole_policy, cartpole_critic
def policy(obs_shapes, action_logits_shapes):
    return cartpole_policy(obs_shapes, action_logits_shapes)
""")
        config = tmp_path / "team.yaml"
        config.write_text("policy:\n  networks:\n    - _target_: cli_policies.policy\n")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            refused = main(["summary", str(config), "--env", "CartPole-v1"])
            allowed = main(["summary", str(config), "--env", "CartPole-v1", "--allow", "cli_policies"])
        assert (refused, allowed) == (1, 0), err.getvalue()
        assert "module 'cli_policies' is not allowed" in err.getvalue()
        assert "policy" in out.getvalue() and "Dense" in out.getvalue()
