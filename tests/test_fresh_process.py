"""Checks that need a fresh interpreter, all answered by one child process (issue #12).

The child runs every probe below in three phases, in this order:

1. `fresh`: nothing imported yet: `import perceptspec` and the folds import neither torch nor gymnasium;
2. `no_torch`: `import torch` and `import gymnasium` raise ImportError (their `sys.modules` entries are None): the
   spec layer, folds, rendering and the CLI's help work; `materialize` says it needs torch;
3. `torch`: the block is lifted: `materialize` imports torch (the positive control of the checks above), and the
   same (spec, shapes, seed) gives bit-identical weights there and here, under another `PYTHONHASHSEED`.

Two more children, under two more hash seeds, run only `DETERMINISM_PROBES` (issue #14: the seed's examples give the
same YAML text, repr, weights and generated source in three processes and here); all three run at once.

Each probe is a piece of source that sets `report` (JSON); its assertions live in the test of the same name here.
A probe that raises reports its traceback, which its test shows.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
from filelock import FileLock

import perceptspec as ps
from tests.test_materialize import AC_SHAPES, actor_critic

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = "tests.torch_model_fixtures"


class Probe(NamedTuple):
    phase: str  # 'fresh', 'no_torch' or 'torch'
    source: str  # sets `report`; reads `OUT` (a directory for files) and `ARGS` (this probe's JSON arguments)
    args: Any = None


LOADED = """
def loaded():
    return sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "gymnasium") and sys.modules[m] is not None)
"""

CARTPOLE_SPEC = {"embedding": {"type": "Dense", "in_keys": ["observation"], "out_keys": ["embedding"],
                               "hidden_units": [16, 32], "non_lin": "torch.nn.ReLU"},
                 "action": {"type": "LinearOutput", "in_keys": ["embedding"], "out_keys": ["action"],
                            "output_units": 2, "init": {"type": "NormC", "std": 0.01},
                            "bias": {"type": "CategoricalBias", "probs": [0.5, 0.5]}},
                 "value": {"type": "LinearOutput", "in_keys": ["embedding"], "out_keys": ["value"],
                           "output_units": 1}}

PROBES: dict[str, Probe] = {
    "import": Probe("fresh", LOADED + """
import sys
import perceptspec as ps
after_import = loaded()
spec = ps.Graph([ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8]),
                 ps.LinearOutput(in_keys="h", out_keys="logits", output_units=2)], out_keys="logits")
ps.summary(spec, {"obs": (4,)})
ps.from_yaml(ps.to_yaml(spec))
report = {"after_import": after_import, "after_folds": loaded(), "materialize": callable(ps.materialize)}
"""),
    "cartpole_folds": Probe("no_torch", LOADED + """
import sys
import perceptspec as ps
spec = ps.Graph({
    "embedding": ps.Dense(in_keys="observation", out_keys="embedding", hidden_units=[16, 32],
                          non_lin="torch.nn.ReLU"),
    "action": ps.LinearOutput(in_keys="embedding", out_keys="action", output_units=2, init=ps.NormC(std=0.01),
                              bias=ps.CategoricalBias(probs=[0.5, 0.5])),
    "value": ps.LinearOutput(in_keys="embedding", out_keys="value", output_units=1),
}, out_keys=["action", "value"], init=ps.NormC(std=1.0))
in_shapes = {"observation": (4,)}
report = {
    "shapes": {k: list(v) for k, v in ps.infer_shapes(spec, in_shapes).items()},
    "parameters": ps.count_parameters(spec, in_shapes),
    "summary": ps.summary(spec, in_shapes),
    "yaml_round_trip": ps.from_yaml(ps.to_yaml(spec)) == spec,
    "dict_round_trip": ps.from_dict(ps.to_dict(spec)) == spec,
    "spec_error": None, "shape_error": None, "materialize_error": None,
}
try:
    ps.Dense(in_keys="observation", out_keys="h", hidden_units=[0])
except ps.SpecError as e:
    report["spec_error"] = str(e)
try:
    ps.infer_shapes(spec, {"observation": ()})
except ps.ShapeError as e:
    report["shape_error"] = str(e)
try:
    ps.materialize(spec, in_shapes)
except ImportError as e:
    report["materialize_error"] = str(e)
report["modules"] = loaded()
"""),
    "functional_folds": Probe("no_torch", """
import sys
import perceptspec as ps
ps.register_function("no_torch.swap", lambda shape: shape[::-1])
spec = ps.Graph([ps.Functional(in_keys="x", out_keys="y", func="no_torch.swap"),
                 ps.Functional(in_keys="y", out_keys="z", func="sum_last"),
                 ps.Concat(in_keys=["y", "w"], out_keys="c", concat_dim=1)], out_keys=["z", "c"])
shapes = ps.infer_shapes(spec, {"x": (2, 2, 3), "w": (5, 2, 2)})
report = {"z": shapes["z"], "c": shapes["c"], "torch": sorted(m for m in sys.modules if m.startswith("torch"))}
"""),
    "torch_model_declared_shapes": Probe("no_torch", LOADED + f"""
import sys
import perceptspec as ps
spec = ps.Graph([
    ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8]),
    ps.TorchModel(in_keys="h", out_keys="z", module_factory="{FIXTURES}:Mlp", kwargs={{"hidden": [6]}},
                  out_shapes=[(6,)]),
    ps.LinearOutput(in_keys="z", out_keys="y", output_units=2),
], out_keys="y")
report = {{"shapes": {{k: list(v) for k, v in ps.infer_shapes(spec, {{"obs": (4,)}}).items()}},
           "yaml": ps.from_yaml(ps.to_yaml(spec)) == spec}}
for name, fold in (("count", ps.count_parameters), ("summary", ps.summary)):
    try:
        fold(spec, {{"obs": (4,)}})
    except ImportError as e:
        report[name] = str(e)
try:
    ps.infer_shapes(ps.TorchModel(in_keys="h", out_keys="z", module_factory="{FIXTURES}:Mlp"), {{"h": (3,)}})
except ImportError as e:
    report["infer"] = str(e)
report["torch"] = loaded()
"""),
    "render": Probe("no_torch", LOADED + """
import sys
import perceptspec as ps
spec = ps.Graph({"embedding": ps.Dense(in_keys="observation", out_keys="embedding", hidden_units=[8]),
                 "action": ps.LinearOutput(in_keys="embedding", out_keys="action", output_units=2)},
                out_keys="action")
files = [str(ps.render(spec, {"observation": (4,)}, OUT + "/p" + s)) for s in (".dot", ".svg")]
report = {"files": files, "loaded": loaded()}
"""),
    "cli_help": Probe("no_torch", LOADED + """
import contextlib, io, sys
from perceptspec.cli import main
out, sub = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out):
    status = main(["--help"])
with contextlib.redirect_stdout(sub):
    main(["render", "--help"])
report = {"status": status, "help": out.getvalue(), "render": sub.getvalue(), "loaded": loaded()}
"""),
    "fingerprints": Probe("no_torch", """
import sys
import perceptspec as ps
report = {"fingerprints": {name: ps.fingerprint(ps.from_yaml(text)) for name, text in ARGS.items()},
          "torch": sorted(m for m in sys.modules if m.startswith("torch"))}
""", {"cartpole": ps.to_yaml(ps.from_dict({"type": "Graph", "blocks": CARTPOLE_SPEC, "out_keys": ["action", "value"]})),
      "ensemble": ps.to_yaml(ps.Ensemble(actor_critic(), size=3)),
      "mapping_field": ps.to_yaml(ps.TorchModel(in_keys="x", out_keys="y",
                                                 module_factory=f"{FIXTURES}:HeadsInKwargsOrder",
                                                 kwargs={n: i + 1 for i, n in enumerate("qwertyuiop")}))}),
    # first of the torch phase, where torch can be imported (and nothing has yet): the CLI still imports none of it
    "cli_specs_only": Probe("torch", LOADED + """
import contextlib, io, json, sys
from perceptspec.cli import main
ENV = "perceptspec.examples.inventory_env:InventoryGridEnv"
outputs = {}
for command in (["summary", "--json"], ["check", "--json"], ["render", "-o", OUT + "/cli", "--format", "dot"]):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main([command[0], "perceptspec/examples/complex.yaml", "--env", ENV, *command[1:]])
    outputs[command[0]] = {"status": status, "stdout": printed.getvalue()}
report = {"outputs": outputs, "loaded": sorted(m for m in loaded() if not m.startswith("gymnasium"))}
"""),
    "materialize_imports_torch": Probe("torch", """
import sys
import perceptspec as ps
before = "torch" in sys.modules
ps.materialize(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8]), {"obs": (4,)}, seed=0)
report = {"before": before, "after": "torch" in sys.modules}
"""),
    "seeded_weights": Probe("torch", """
import torch
import perceptspec as ps
for name, (text, shapes, seed) in ARGS.items():
    module = ps.materialize(ps.from_yaml(text), {k: tuple(v) for k, v in shapes.items()}, seed=seed)
    torch.save(module.state_dict(), f"{OUT}/{name}.pt")
report = sorted(ARGS)
""", {"actor_critic": (ps.to_yaml(actor_critic()), AC_SHAPES, 2024),
      "ensemble": (ps.to_yaml(ps.Ensemble(actor_critic(), size=3)), AC_SHAPES, 5),
      "torch_model": (ps.to_yaml(ps.TorchModel(in_keys="x", out_keys="y", module_factory=f"{FIXTURES}:Mlp",
                                               kwargs={"hidden": [3]})), {"x": (2,)}, 11),
      # a factory that builds its layers in the order of its kwargs: that order must not follow str hashing
      "kwargs_order": (ps.to_yaml(ps.TorchModel(in_keys="x", out_keys="y",
                                                module_factory=f"{FIXTURES}:HeadsInKwargsOrder",
                                                kwargs={n: i + 1 for i, n in enumerate("qwertyuiop")})),
                       {"x": (2,)}, 5)}),
    "seed_examples": Probe("torch", """
import hashlib
from importlib import resources
import gymnasium as gym
import torch
import yaml
import perceptspec as ps
from perceptspec.examples.inventory_env import InventoryGridEnv

def digest(module):
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(f"{name} {t.dtype} {tuple(t.shape)}".encode())
        h.update(t.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()

report = {}
for config, env in ARGS.items():
    cfg = yaml.safe_load((resources.files("perceptspec.examples") / config).read_text())
    env = gym.make(env) if env == "CartPole-v1" else InventoryGridEnv()
    models = ps.compose(cfg, env.observation_space, env.action_space)
    modules = {"policy": models.policy, "critic": models.critic, "actor_critic": models.actor_critic}
    report[config] = {"yaml": {role: ps.to_yaml(spec) for role, spec in models.specs.items()},
                      "repr": {role: repr(spec) for role, spec in models.specs.items()},
                      "code": {name: m.code for name, m in modules.items()},
                      "weights": {name: digest(m) for name, m in modules.items()}}
""", {"cartpole.yaml": "CartPole-v1", "complex.yaml": "InventoryGridEnv",
      "shared_complex.yaml": "InventoryGridEnv"}),
}

#: runs every probe, phase by phase; prints the reports as JSON on its last line
CHILD = """
import json, sys, traceback
out, probes = sys.argv[1], json.loads(sys.stdin.read())
import perceptspec
perceptspec.allow("tests")  # as tests/conftest.py: the probes' factories live under tests
reports = {}
for phase in ("fresh", "no_torch", "torch"):
    if phase == "no_torch":
        sys.modules["torch"] = sys.modules["gymnasium"] = None
    if phase == "torch":
        del sys.modules["torch"], sys.modules["gymnasium"]
    for name, (probe_phase, source, args) in probes.items():
        if probe_phase == phase:
            namespace = {"OUT": out, "ARGS": args}
            try:
                exec(compile(source, f"<probe {name}>", "exec"), namespace)
                reports[name] = namespace["report"]
            except BaseException:
                reports[name] = {"probe raised": traceback.format_exc()}
print(json.dumps(reports))
"""


def other_hash_seeds() -> list[str]:
    """Three PYTHONHASHSEEDs unlike this process's: nothing a child computes may depend on str hashing."""
    return [seed for seed in ("4321", "1234", "0", "99") if seed != os.environ.get("PYTHONHASHSEED")][:3]


#: what the children under the second and third hash seeds run (the first runs every probe)
DETERMINISM_PROBES = ("seed_examples", "fingerprints")


def run_children(out: Path) -> dict[str, dict[str, Any]]:
    """The reports of each child by its hash seed. The children run at once: the first every probe, the other two
    only `DETERMINISM_PROBES`, so that three processes under three hash seeds answer those."""
    children: dict[str, tuple[subprocess.Popen[str], str]] = {}
    for i, seed in enumerate(other_hash_seeds()):
        probes = {name: (p.phase, textwrap.dedent(p.source), p.args) for name, p in PROBES.items()
                  if i == 0 or name in DETERMINISM_PROBES}
        (out / seed).mkdir(exist_ok=True)
        child = subprocess.Popen([sys.executable, "-W", "error", "-c", CHILD, str(out / seed)], cwd=ROOT,
                                 env={**os.environ, "PYTHONHASHSEED": seed}, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        children[seed] = (child, json.dumps(probes))
    reports = {}
    for seed, (child, request) in children.items():
        stdout, stderr = child.communicate(request, timeout=300)
        assert child.returncode == 0, stderr
        reports[seed] = json.loads(stdout.strip().splitlines()[-1])
    return reports


@functools.cache
def child_runs(out: Path) -> dict[str, dict[str, Any]]:
    """`run_children`'s reports, run once for the whole pytest run: the first worker to ask runs the children and
    saves their reports in `out`, shared by every worker (see `out_dir`); the others wait for them and read them."""
    saved = out / "reports.json"
    with FileLock(out / "reports.lock"):
        if not saved.exists():
            saved.write_text(json.dumps(run_children(out)))
    reports: dict[str, dict[str, Any]] = json.loads(saved.read_text())
    return reports


def child_run(out: Path) -> dict[str, Any]:
    """The reports of the child that runs every probe."""
    return child_runs(out)[other_hash_seeds()[0]]


@pytest.fixture(scope="session")
def out_dir(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """One directory for the whole run, shared by pytest-xdist's workers (their temporary directories are siblings),
    so the children run once however the run spreads this module's tests (`make test`'s `--dist loadfile` keeps them
    on one worker; `--dist load` does not)."""
    root = tmp_path_factory.getbasetemp()
    out = (root if worker_id == "master" else root.parent) / "fresh_process"
    out.mkdir(exist_ok=True)
    return out


@pytest.fixture
def report(request: pytest.FixtureRequest, out_dir: Path) -> Any:
    """The report of the probe named like the test (`test_<probe>`), from the one child run."""
    name = request.function.__name__.removeprefix("test_")
    probe_report = child_run(out_dir)[name]
    if isinstance(probe_report, dict) and "probe raised" in probe_report:
        pytest.fail(f"probe '{name}' raised in the child:\n{probe_report['probe raised']}")
    return probe_report


def test_every_probe_has_its_test() -> None:
    tests = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert set(PROBES) <= tests, set(PROBES) - tests


# --- fresh: importing perceptspec -------------------------------------------------------------------------------

def test_import(report: dict[str, Any]) -> None:
    """`import perceptspec` and the folds import neither torch nor gymnasium."""
    assert report["after_import"] == []
    assert report["after_folds"] == []
    assert report["materialize"] is True


# --- no_torch: where `import torch` fails ----------------------------------------------------------------------------

def test_cartpole_folds(report: dict[str, Any]) -> None:
    """Folds, serialization and errors work when torch cannot be imported; `materialize` says it needs torch."""
    assert report["shapes"] == {"observation": [4], "embedding": [32], "action": [2], "value": [1]}
    expected = (4 * 16 + 16) + (16 * 32 + 32) + (32 * 2 + 2) + (32 * 1 + 1)
    assert report["parameters"] == expected == 723
    summary = report["summary"]
    for path in ("embedding", "action", "value"):
        assert any(line.startswith(path) for line in summary.splitlines()), path
    assert "723" in summary
    assert report["yaml_round_trip"] is True
    assert report["dict_round_trip"] is True
    assert report["spec_error"] is not None and "hidden_units" in report["spec_error"]
    assert report["shape_error"] is not None and "'observation'" in report["shape_error"]
    assert report["materialize_error"] is not None and "torch" in report["materialize_error"]
    assert report["modules"] == []


def test_functional_folds(report: dict[str, Any]) -> None:
    """Registering a function and folding a Functional spec never imports torch."""
    assert report == {"z": [3, 2], "c": [8, 2, 2], "torch": ["torch"]}  # "torch" is the None placeholder


def test_torch_model_declared_shapes(report: dict[str, Any]) -> None:
    """A TorchModel with declared out_shapes folds without torch; what needs its module says so."""
    assert report["shapes"] == {"obs": [4], "h": [8], "z": [6], "y": [2]}
    assert report["yaml"] is True
    assert "TorchModel(out_keys='z') ('tests.torch_model_fixtures:Mlp') needs torch to count its parameters" \
        in report["count"]
    assert "needs torch" in report["summary"]
    assert "needs torch to infer its out_shapes (declare out_shapes to avoid this)" in report["infer"]
    assert report["torch"] == []


def test_render(report: dict[str, Any]) -> None:
    """Rendering needs neither torch nor gymnasium (`.svg` falls back to `.dot` without graphviz's dot)."""
    import shutil

    assert report["loaded"] == []
    assert report["files"][0].endswith("p.dot")
    assert report["files"][1].endswith("p.svg" if shutil.which("dot") else "p.dot")
    assert all(Path(f).exists() for f in report["files"])


def test_cli_help(report: dict[str, Any]) -> None:
    """`perceptspec --help` lists the commands, with examples, without importing torch or gymnasium."""
    assert report["status"] == 0
    for command in ("summary", "render", "check", "demo"):
        assert command in report["help"]
    assert "module:Factory" in report["render"] and "InventoryGridEnv" in report["render"]
    assert report["loaded"] == []


# --- torch: the block lifted --------------------------------------------------------------------------------------

def test_fingerprints(report: dict[str, Any], out_dir: Path) -> None:
    """Issue #18: a spec's fingerprint is the same in three processes under three other hash seeds as here, and
    computing it needs no torch."""
    here = {name: ps.fingerprint(ps.from_yaml(text)) for name, text in PROBES["fingerprints"].args.items()}
    assert report["fingerprints"] == here
    for seed, reports in child_runs(out_dir).items():
        assert reports["fingerprints"]["fingerprints"] == here, seed
    assert report["torch"] == ["torch"]  # the None placeholder: torch was never imported


def test_cli_specs_only(report: dict[str, Any]) -> None:
    """The command line's summary, check and render of the seed's Example 2 import no torch (issue #19)."""
    assert report["loaded"] == []
    outputs = report["outputs"]
    assert all(o["status"] == 0 for o in outputs.values()), outputs
    assert json.loads(outputs["summary"]["stdout"])["networks"]["policy"]["parameters"] == 128_988
    assert json.loads(outputs["check"]["stdout"])["networks"]["critic"] == {"kind": "spec", "parameters": 128_361}
    assert outputs["render"]["stdout"].split()[-1].endswith("actor_critic.dot")


def test_materialize_imports_torch(report: dict[str, Any]) -> None:
    """The positive control: the same child does see torch once it materializes (so the checks above can fail)."""
    assert report == {"before": False, "after": True}


def test_seeded_weights(report: list[str], out_dir: Path) -> None:
    """Same spec, shapes and seed give bit-identical weights in another process with another hash seed (a graph
    with a shared latent, a TorchModel, and one whose factory builds layers in the order of its kwargs)."""
    assert report == ["actor_critic", "ensemble", "kwargs_order", "torch_model"]
    for name, (text, shapes, seed) in PROBES["seeded_weights"].args.items():
        here = ps.materialize(ps.from_yaml(text), shapes, seed=seed).state_dict()
        there = torch.load(out_dir / other_hash_seeds()[0] / f"{name}.pt", weights_only=True)
        assert list(there) == list(here), name
        for key in here:
            assert torch.equal(here[key], there[key]), (name, key)


def test_seed_examples(report: dict[str, Any], out_dir: Path) -> None:
    """Issue #14: the seed's examples, composed from their YAML configs, give the same YAML text, repr, weights and
    generated source here and in three processes under three other hash seeds."""
    assert set(report) == set(PROBES["seed_examples"].args)
    namespace = {"OUT": str(out_dir), "ARGS": PROBES["seed_examples"].args}
    exec(compile(textwrap.dedent(PROBES["seed_examples"].source), "<probe seed_examples>", "exec"), namespace)
    here = json.loads(json.dumps(namespace["report"]))  # tuples as lists, as the children's JSON has them
    for seed, reports in child_runs(out_dir).items():
        for config, parts in reports["seed_examples"].items():
            for part, values in parts.items():
                assert values == here[config][part], (seed, config, part)
    assert len(child_runs(out_dir)) == 3
    assert here["shared_complex.yaml"]["code"]["actor_critic"].count("_call(") > 5  # the comparison saw code
