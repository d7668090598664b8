"""The `perceptspec` command line (issue #5), from the repository root.

Each command's output is checked, and every failure must be one line on stderr, without a traceback, with a
non-zero exit status (1 for a failing command, 2 for a bad command line). The commands run in this process
(`perceptspec.cli.main(argv)`, which is all the console script calls; issue #12); one smoke test runs the console
script and `python -m perceptspec` as a user does, in subprocesses.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

import perceptspec as ps
from perceptspec.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "perceptspec" / "examples"
INVENTORY = "perceptspec.examples.inventory_env:InventoryGridEnv"
HAVE_DOT = shutil.which("dot") is not None


@pytest.fixture(autouse=True)
def _from_the_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`perceptspec ARGS` in this process: its exit status and what it printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in args])
    return subprocess.CompletedProcess(["perceptspec", *map(str, args)], status, out.getvalue(), err.getvalue())


def assert_fails(result: subprocess.CompletedProcess[str], status: int, *fragments: str) -> str:
    """The command failed with `status` and one line on stderr containing every fragment; returns the line."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


class TestSummary:
    def test_example1(self) -> None:
        result = run("summary", EXAMPLES / "cartpole.yaml", "--env", "CartPole-v1")
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "observations: observation (4,)" in out and "action logits: action (2,)" in out
        assert "Dense 4→16→32 relu" in out and "Total parameters: 690" in out and "Total parameters: 657" in out
        assert result.stderr == ""

    def test_example4_names_the_shared_key(self) -> None:
        result = run("summary", EXAMPLES / "shared_complex.yaml", "--env", INVENTORY)
        assert result.returncode == 0, result.stderr
        assert "(reads latent_screen (4, 32) from the policy)" in result.stdout
        assert "trunk              Graph (4 blocks)" in result.stdout

    def test_recurrent_networks_start_from_their_initial_state(self) -> None:
        """Issue #17: state keys are neither observations nor keys shared from the policy."""
        config = EXAMPLES / "recurrent_cartpole.yaml"
        summary = run("summary", config, "--env", "CartPole-v1")
        assert summary.returncode == 0, summary.stderr
        assert "from the policy" not in summary.stdout and "StatefulLSTM 4→64, state (1, 64)" in summary.stdout
        check = run("check", config, "--env", "CartPole-v1", "--forward")
        assert check.returncode == 0, check.stderr
        assert "gave action (1, 2), value (1, 1)" in check.stdout

    def test_example3_plain_modules(self) -> None:
        result = run("summary", EXAMPLES / "plain_cartpole.yaml", "--env", "CartPole-v1")
        assert result.returncode == 0, result.stderr
        assert "PlainCartPolePolicy: a plain torch module with 690 parameters" in result.stdout

    def test_env_kwargs(self) -> None:
        result = run("summary", EXAMPLES / "complex.yaml", "--env", INVENTORY, "--env-kwargs", "{history: 2}")
        assert result.returncode == 0, result.stderr
        assert "observation_screen (2, 3, 64, 64)" in result.stdout


class TestRender:
    def test_writes_policy_critic_and_actor_critic(self, tmp_path: Path) -> None:
        result = run("render", EXAMPLES / "shared_complex.yaml", "--env", INVENTORY, "-o", tmp_path / "drawings",
                     "--format", "svg", "dot")
        assert result.returncode == 0, result.stderr
        suffix = ".svg" if HAVE_DOT else ".dot"
        names = [Path(line).name for line in result.stdout.splitlines()]
        assert names == ["policy" + suffix, "policy.dot", "critic" + suffix, "critic.dot", "actor_critic" + suffix,
                         "actor_critic.dot"]
        assert all((tmp_path / "drawings" / name).exists() for name in names)
        assert "latent_screen" in (tmp_path / "drawings" / "actor_critic.dot").read_text()

    @pytest.mark.skipif(not HAVE_DOT, reason="graphviz's 'dot' program is not installed (apt-get install graphviz)")
    def test_png(self, tmp_path: Path) -> None:
        result = run("render", EXAMPLES / "cartpole.yaml", "--env", "CartPole-v1", "-o", tmp_path, "--format", "png")
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "actor_critic.png").read_bytes().startswith(b"\x89PNG")

    def test_needs_an_output_directory(self) -> None:
        assert_fails(run("render", EXAMPLES / "cartpole.yaml", "--env", "CartPole-v1"), 2,
                     "perceptspec render: error:", "-o/--output", "--help")


class TestCheck:
    @pytest.mark.parametrize("config, env", [("plain_cartpole.yaml", "CartPole-v1"),
                                             ("shared_complex.yaml", INVENTORY)])
    def test_seed_examples_pass(self, config: str, env: str) -> None:
        result = run("check", EXAMPLES / config, "--env", env, "--forward")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("ok: ") and "value (1, 1)" in result.stdout

    def test_from_the_specs_alone(self) -> None:
        """Without --forward, check composes and folds: the parameter counts, and no forward pass."""
        result = run("check", EXAMPLES / "shared_complex.yaml", "--env", INVENTORY)
        assert result.returncode == 0, result.stderr
        assert result.stdout == (f"ok: {EXAMPLES / 'shared_complex.yaml'} on {INVENTORY}: policy (spec, 128,988 "
                                 f"parameters), critic (spec, 44,609 parameters)\n")

    def test_invalid_spec(self, tmp_path: Path) -> None:
        config = write(tmp_path, "bad.yaml", """
            policy:
              networks:
                - _target_: perceptspec.examples.cartpole.cartpole_policy
                  hidden_units: [0, 16]
        """)
        assert_fails(run("check", config, "--env", "CartPole-v1"), 1, "perceptspec check: error: SpecError:",
                     "hidden_units", "[0, 16]")

    def test_several_problems_on_one_line(self, tmp_path: Path) -> None:
        config = write(tmp_path, "bad.yaml", """
            policy:
              networks:
                - _target_: perceptspec.examples.cartpole.cartpole_policy
                  hidden_units: [16]
                  non_lin: sparkle
            critic: {kind: cubic}
        """)
        assert_fails(run("check", config, "--env", "CartPole-v1"), 1, "critic.kind", "cubic")

    def test_shapes_that_do_not_fit_the_env(self) -> None:
        assert_fails(run("check", EXAMPLES / "complex.yaml", "--env", "CartPole-v1"), 1, "observation_screen")

    def test_unknown_target(self, tmp_path: Path) -> None:
        config = write(tmp_path, "bad.yaml", """
            policy:
              networks:
                - _target_: no_such_package.policy
        """)
        assert_fails(run("check", config, "--env", "CartPole-v1"), 1, "no_such_package")

    def test_broken_yaml(self, tmp_path: Path) -> None:
        config = write(tmp_path, "bad.yaml", "policy: [\n")
        assert_fails(run("check", config, "--env", "CartPole-v1"), 1, "bad.yaml")

    def test_missing_config(self, tmp_path: Path) -> None:
        assert_fails(run("check", tmp_path / "nope.yaml", "--env", "CartPole-v1"), 1, "config file", "nope.yaml",
                     "not found")

    @pytest.mark.parametrize("env, fragment", [
        ("NoSuchEnv-v0", "NoSuchEnv"),
        ("no_such_module:Env", "cannot import module 'no_such_module'"),
        ("perceptspec.examples.inventory_env:GRID", "is not an env class or function"),
        ("json:JSONDecoder", "not an env"),
    ])
    def test_bad_env(self, env: str, fragment: str) -> None:
        assert_fails(run("check", EXAMPLES / "cartpole.yaml", "--env", env), 1, fragment)

    def test_bad_env_kwargs(self) -> None:
        assert_fails(run("check", EXAMPLES / "cartpole.yaml", "--env", "CartPole-v1", "--env-kwargs", "[1]"), 2,
                     "--env-kwargs", "expected a mapping")

    def test_traceback_on_request(self, tmp_path: Path) -> None:
        """With --traceback the error propagates (Python prints its traceback) instead of becoming one line."""
        with pytest.raises(Exception, match="nope.yaml"):
            main(["check", str(tmp_path / "nope.yaml"), "--env", "CartPole-v1", "--traceback"])


class TestCommandLine:
    def test_unknown_command(self) -> None:
        assert_fails(run("draw"), 2, "invalid choice: 'draw'")

    def test_main_returns_the_status(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["check", str(tmp_path / "nope.yaml"), "--env", "CartPole-v1"]) == 1
        assert capsys.readouterr().err.startswith("perceptspec check: error: config file")
        assert main(["nonsense"]) == 2

    def test_console_script_and_python_m_as_a_user_runs_them(self, tmp_path: Path) -> None:
        """The smoke test in real subprocesses (both at once): the installed console script, and `python -m`, whose
        failure is one line on stderr with status 1 and no traceback."""
        script = Path(sys.executable).parent / "perceptspec"
        if not script.exists():
            pytest.skip("the console script is not installed in this environment (pip install -e . creates it)")
        runs = [subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for argv in ([str(script), "check", str(EXAMPLES / "cartpole.yaml"), "--env", "CartPole-v1"],
                             [sys.executable, "-W", "error", "-m", "perceptspec", "summary",
                              str(tmp_path / "nope.yaml"), "--env", "CartPole-v1"])]
        (script_out, script_err), (module_out, module_err) = (p.communicate(timeout=300) for p in runs)
        assert runs[0].returncode == 0, script_err
        assert script_out.startswith("ok: ") and "policy (spec, 690 parameters)" in script_out
        assert_fails(subprocess.CompletedProcess([], runs[1].returncode, module_out, module_err), 1,
                     "perceptspec summary: error: config file", "nope.yaml", "not found")

    @pytest.mark.slow  # `make demo` runs it too
    def test_demo(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        result = run("demo", "-o", tmp_path / "out")
        assert result.returncode == 0, result.stderr
        suffixes = [".svg", ".png"] if HAVE_DOT else [".dot"]
        for example in ("example1_cartpole", "example2_complex", "example3_plain_cartpole", "example4_shared_complex"):
            for name in ("policy", "critic", "actor_critic"):
                for suffix in suffixes:
                    assert (tmp_path / "out" / example / f"{name}{suffix}").exists(), (example, name, suffix)
        assert "rollout: return" in result.stdout


def as_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    value = json.loads(result.stdout)
    assert isinstance(value, dict) and value["schema"] == 1
    return value


class TestJson:
    """`--json` (docs/cli.md): one object on stdout, for scripts and editors."""

    def test_summary_of_example4(self) -> None:
        result = run("summary", EXAMPLES / "shared_complex.yaml", "--env", INVENTORY, "--json")
        assert result.returncode == 0, result.stderr
        out = as_json(result)
        assert out["ok"] is True and out["kind"] == "config" and out["critic"] == "state"
        assert out["observations"] == {"0": {"observation_screen": [4, 3, 64, 64], "observation_inventory": [4, 16]}}
        assert out["action_logits"] == {"0": {"action_move": [4], "action_use": [16]}}
        policy, critic = out["networks"]["policy"], out["networks"]["critic"]
        assert policy["kind"] == "spec" and policy["parameters"] == 128_988
        assert sum(b["parameters"] for b in policy["blocks"]) == 128_988
        assert policy["outputs"]["latent_screen"] == [4, 32] and critic["shared_from_policy"] == ["latent_screen"]
        first = policy["blocks"][0]
        assert first == {"path": "screen", "type": "VGGConvDense", "layer": "VGGConvDense 3→8→16→32 | 2048→32 relu",
                         "inputs": {"observation_screen": [4, 3, 64, 64]}, "outputs": {"latent_screen": [4, 32]},
                         "parameters": 83_752}
        assert {b["path"] for b in policy["blocks"]} >= {"trunk.inventory", "trunk.recurrent", "action_use"}

    def test_summary_of_a_plain_module(self) -> None:
        out = as_json(run("summary", EXAMPLES / "plain_cartpole.yaml", "--env", "CartPole-v1", "--json"))
        assert out["networks"]["policy"] == {"kind": "module", "class": "PlainCartPolePolicy",
                                             "inputs": {"observation": [4]}, "parameters": 690}

    def test_check(self) -> None:
        out = as_json(run("check", EXAMPLES / "cartpole.yaml", "--env", "CartPole-v1", "--json"))
        assert out["ok"] is True and out["forward"] is None
        assert out["networks"] == {"policy": {"kind": "spec", "parameters": 690},
                                   "critic": {"kind": "spec", "parameters": 657}}
        forward = as_json(run("check", EXAMPLES / "cartpole.yaml", "--env", "CartPole-v1", "--json", "--forward"))
        assert forward["forward"] == {"action": [1, 2], "value": [1, 1]}

    def test_a_failure_is_an_object_too(self) -> None:
        result = run("check", EXAMPLES / "complex.yaml", "--env", "CartPole-v1", "--json")
        assert_fails(result, 1, "perceptspec check: error: SpecError:")
        out = as_json(result)
        assert out["ok"] is False and out["error"]["type"] == "SpecError"
        assert out["error"]["message"].startswith("policy network perceptspec.examples.complex.complex_policy: reads")


class TestSpecFile:
    """A spec file (`ps.to_yaml`) instead of a config: shapes from --in-shapes or from the env's observations."""

    @pytest.fixture
    def spec_file(self) -> Path:
        """Seed Example 1's policy as a spec file, as the docs use it."""
        from perceptspec.examples.cartpole import cartpole_policy

        path = EXAMPLES / "cartpole_policy_spec.yaml"
        assert ps.from_yaml(path) == cartpole_policy({"observation": (4,)}, {"action": (2,)})
        return path

    def test_summary_check_and_render(self, spec_file: Path, tmp_path: Path) -> None:
        summary = run("summary", spec_file, "--in-shapes", "{observation: [4]}")
        assert summary.returncode == 0, summary.stderr
        assert summary.stdout.startswith(f"{spec_file}: a spec\n\nspec\n") and "Total parameters: 690" in summary.stdout
        check = run("check", spec_file, "--env", "CartPole-v1", "--forward")
        assert check.stdout == (f"ok: {spec_file} on CartPole-v1: spec (spec, 690 parameters); one forward on a "
                                f"sampled observation gave action (1, 2)\n"), check.stderr
        out = as_json(run("summary", spec_file, "--in-shapes", "{observation: [4]}", "--json"))
        assert out["kind"] == "spec" and out["networks"]["spec"]["parameters"] == 690 and "critic" not in out
        render = run("render", spec_file, "--in-shapes", "{observation: [4]}", "-o", tmp_path / "out", "--format",
                     "dot")
        assert render.stdout.split() == [str(tmp_path / "out" / "spec.dot")], render.stderr

    def test_what_it_needs(self, spec_file: Path) -> None:
        assert_fails(run("summary", spec_file), 1, f"'{spec_file}' is a spec: give its input shapes")
        assert_fails(run("summary", EXAMPLES / "cartpole.yaml"), 1, "is a composer config: give the env")
        assert_fails(run("summary", EXAMPLES / "cartpole.yaml", "--in-shapes", "{observation: [4]}", "--env",
                         "CartPole-v1"), 1, "--in-shapes gives a spec file's input shapes")
        assert_fails(run("summary", spec_file, "--env", INVENTORY), 1,
                     "the spec reads ['observation'], which the env's observations")


#: (env, its kwargs) over the kinds of observation space: a vector Box, Discrete observations, a channel-last uint8
#: image (a NatureCNN), one too small for the NatureCNN (flattened, MiniGrid's size), a Dict
DEFAULT_NETWORK_ENVS = [("CartPole-v1", {}), ("FrozenLake-v1", {}), ("tests.pixel_env:PixelEnv", {}),
                        ("tests.pixel_env:PixelEnv", {"height": 7, "width": 7}), (INVENTORY, {})]


class TestWithoutAFile:
    """No FILE: summary, check and render look at the default networks for --env, `ps.compose(None, ...)`'s."""

    @pytest.mark.parametrize(("env", "kwargs"), DEFAULT_NETWORK_ENVS)
    def test_the_networks_compose_builds(self, env: str, kwargs: dict[str, int], tmp_path: Path) -> None:
        import numpy as np
        import torch

        from perceptspec._observations import flat_values, module_inputs, preprocessing
        from perceptspec.cli import make_env

        args = ["--env", env, "--env-kwargs", json.dumps(kwargs)]
        space = make_env(env, kwargs)
        models = ps.compose(None, space.observation_space, space.action_space)
        counts = {"policy": numel(models.policy), "critic": numel(models.critic)}
        summary = as_json(run("summary", *args, "--json"))
        assert summary["ok"] is True and summary["file"] is None and summary["kind"] == "config"
        assert {name: net["parameters"] for name, net in summary["networks"].items()} == counts
        check = as_json(run("check", *args, "--json", "--forward"))
        assert {name: net["parameters"] for name, net in check["networks"].items()} == counts
        # what the fold says each network outputs is what the composed modules return
        space.observation_space.seed(0)
        raw = flat_values(space.observation_space, space.observation_space.sample())
        with torch.no_grad():
            outputs = models.actor_critic(module_inputs(preprocessing([space.observation_space]),
                                                        {k: np.asarray(v)[None] for k, v in raw.items()}))
        folded = {k: [1, *shape] for net in summary["networks"].values() for k, shape in net["outputs"].items()}
        assert {k: list(v.shape) for k, v in outputs.items()} == {k: folded[k] for k in outputs}
        assert check["forward"] == {k: folded[k] for k in check["forward"]}
        text = run("summary", *args).stdout
        assert text.startswith(f"default networks on {env}\n")
        for name in counts:
            spec = models.specs[name]
            assert spec is not None and ps.summary(spec, models.in_shapes[name]) in text
        assert run("check", *args).stdout.startswith(f"ok: default networks on {env}: policy (spec, ")
        render = run("render", *args, "-o", tmp_path, "--format", "dot")
        assert render.stdout.split() == [str(tmp_path / f"{name}.dot") for name in ("policy", "critic", "actor_critic")]

    def test_without_torch(self, tmp_path: Path) -> None:
        """As with a config, summary, check and render of the default networks import no torch: here importing it
        fails, and every command succeeds."""
        child = textwrap.dedent(f"""
            import contextlib, io, json, sys
            sys.modules["torch"] = None  # `import torch` raises ImportError
            from perceptspec.cli import main
            statuses = []
            for env in ("CartPole-v1", "FrozenLake-v1", "tests.pixel_env:PixelEnv", {INVENTORY!r}):
                for command in (["summary"], ["summary", "--json"], ["check", "--json"],
                                ["render", "-o", {str(tmp_path)!r}, "--format", "dot"]):
                    with contextlib.redirect_stdout(io.StringIO()):
                        statuses.append(main([*command, "--env", env]))
            print(json.dumps(statuses))
            """)
        result = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        assert json.loads(result.stdout) == [0] * 16

    def test_what_it_needs(self) -> None:
        assert_fails(run("summary"), 1, "without FILE the default networks are composed for an env: give it")
        assert_fails(run("check", "--env", "CartPole-v1", "--in-shapes", "{observation: [4]}"), 1,
                     "--in-shapes gives a spec file's input shapes, but there is no FILE")
        assert_fails(run("diff", EXAMPLES / "cartpole.yaml"), 2, "the following arguments are required: B")


def numel(module: Any) -> int:
    """A module's parameters (not None: every default critic is one)."""
    assert module is not None
    return sum(int(p.numel()) for p in module.parameters())
