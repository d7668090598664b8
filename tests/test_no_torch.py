"""The spec layer works where `import torch` fails, and `import perceptspec` never imports torch.

Each check runs in a fresh interpreter (`sys.executable`), so modules this test process already imported do not
hide an import. The child prints a JSON report that the test checks here.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

BLOCK_TORCH = """
import sys
sys.modules["torch"] = None  # `import torch` (and `import torch.nn`) now raises ImportError
sys.modules["gymnasium"] = None
"""

CARTPOLE = """
import json
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
    "spec_error": None,
    "shape_error": None,
    "materialize_error": None,
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
report["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "gymnasium")
                           and sys.modules[m] is not None)
print(json.dumps(report))
"""


def run_child(source: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-W", "error", "-c", textwrap.dedent(source)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


@functools.lru_cache(maxsize=1)
def blocked_report() -> dict[str, Any]:
    """The CartPole child's report, run once with torch and gymnasium unimportable."""
    return run_child(BLOCK_TORCH + CARTPOLE)


def test_folds_work_when_torch_cannot_be_imported() -> None:
    report = blocked_report()
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
    assert report["modules"] == []


def test_materialize_needs_torch_and_imports_it_only_when_called() -> None:
    report = blocked_report()
    assert report["materialize_error"] is not None
    assert "torch" in report["materialize_error"]


def test_import_does_not_import_torch_or_gymnasium() -> None:
    report = run_child("""
        import json, sys
        import perceptspec as ps
        after_import = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "gymnasium"))
        spec = ps.Graph([ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8]),
                         ps.LinearOutput(in_keys="h", out_keys="logits", output_units=2)], out_keys="logits")
        ps.summary(spec, {"obs": (4,)})
        ps.from_yaml(ps.to_yaml(spec))
        after_folds = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "gymnasium"))
        print(json.dumps({"after_import": after_import, "after_folds": after_folds,
                          "materialize": callable(ps.materialize)}))
    """)
    assert report["after_import"] == []
    assert report["after_folds"] == []
    assert report["materialize"] is True


def test_torch_is_imported_by_materialize() -> None:
    # the positive control: the same child does see torch once it materializes (so the checks above can fail)
    report = run_child("""
        import json, sys
        import perceptspec as ps
        before = "torch" in sys.modules
        ps.materialize(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8]), {"obs": (4,)}, seed=0)
        print(json.dumps({"before": before, "after": "torch" in sys.modules}))
    """)
    assert report == {"before": False, "after": True}
