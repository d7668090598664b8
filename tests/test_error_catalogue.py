"""docs/errors.md is a test (issue #7): every example raises the error shown, with exactly that message, and the
examples together reach every place in perceptspec that raises an error or reports a problem.

The catalogue is read as a list of entries: each ```python block, then the ```text block after it with
`<ErrorType>: <message>` (or `(no error)`); `…` in a message stands for any text. The examples of one `##` section
run in order in one namespace (so a section can set up a module once), which starts with `ps` and `torch`. A
```console block runs `$ perceptspec ...` through `perceptspec.cli.main`; its message is what it prints to stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import re
import shlex
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import perceptspec as ps

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "docs" / "errors.md"
PACKAGE = ROOT / "perceptspec"
NO_ERROR = "(no error)"
ANY = "…"


@dataclasses.dataclass(frozen=True)
class Entry:
    section: str
    heading: str
    language: str
    code: str
    expected: str
    line: int

    @property
    def name(self) -> str:
        return f"{self.heading} (docs/errors.md line {self.line})"


FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)


def read_catalogue(text: str) -> list[Entry]:
    entries: list[Entry] = []
    section = heading = ""
    code: tuple[str, str, int] | None = None
    position = 0
    for match in re.finditer(r"^(##[^\n]*)$|" + FENCE.pattern, text, re.S | re.M):
        line = text.count("\n", 0, match.start()) + 1
        position = match.end()
        title, language, body = match.group(1), match.group(2), match.group(3)
        if title is not None:
            if title.startswith("### "):
                heading = title[4:]
            else:
                section, heading = title[3:], title[3:]
            assert code is None, f"line {line}: a python block without its message before '{title}'"
        elif language in ("python", "console"):
            assert code is None, f"line {line}: two examples in a row"
            code = (language, body, line)
        elif language == "text":
            assert code is not None, f"line {line}: a message without an example"
            entries.append(Entry(section, heading, code[0], code[1], body.rstrip("\n"), code[2]))
            code = None
    assert code is None and position, "the catalogue ends with an example without its message"
    return entries


ENTRIES = read_catalogue(CATALOGUE.read_text())
SECTIONS = list(dict.fromkeys(e.section for e in ENTRIES))


def outcome(entry: Entry, namespace: dict[str, Any]) -> str:
    """What running the entry's example gives: '(no error)' or '<ErrorType>: <message>' (what a command prints)."""
    if entry.language == "console":
        return command_outcome(entry.code)
    code = entry.code
    try:
        exec(compile(code, "<docs/errors.md>", "exec"), namespace)  # noqa: S102  (our own documentation)
    except Exception as e:  # noqa: BLE001  (every error is the point here)
        return f"{type(e).__name__}: {e}"
    return NO_ERROR


def command_outcome(lines: str) -> str:
    from perceptspec.cli import main

    printed = []
    for line in lines.splitlines():
        assert line.startswith("$ perceptspec "), line
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                main(shlex.split(line)[2:])
            except SystemExit:
                pass
        printed.append(err.getvalue().strip())
    return "\n".join(p for p in printed if p) or NO_ERROR


def matches(expected: str, got: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split(ANY))
    return re.fullmatch(pattern, got, re.S) is not None


def run_section(section: str) -> list[tuple[Entry, str]]:
    """Every entry of `section` with what it gave, in order, in one namespace."""
    from perceptspec._spec._shape_ops import _functions

    for name in [n for n in _functions if n.startswith("catalogue_")]:  # names the examples register, once each
        del _functions[name]
    namespace: dict[str, Any] = {"ps": ps, "torch": torch, "__name__": "docs_errors"}
    return [(entry, outcome(entry, namespace)) for entry in ENTRIES if entry.section == section]


@functools.lru_cache(maxsize=1)
def catalogue_run() -> tuple[dict[str, list[tuple[Entry, str]]], frozenset[tuple[str, int]]]:
    """Every section's outcomes, and the lines of the package they ran: the examples run once per process
    (some register names, which only works once)."""
    from perceptspec._spec._descriptor import _kinds
    from perceptspec._spec._shape_ops import _functions

    outcomes: dict[str, list[tuple[Entry, str]]] = {}

    def run_all() -> None:
        for section in SECTIONS:
            outcomes[section] = run_section(section)

    kinds, functions = dict(_kinds), dict(_functions)
    try:
        reached = traced(run_all)
    finally:  # what the examples register (a kind, functions) must not leak into other tests
        _kinds.clear()
        _kinds.update(kinds)
        _functions.clear()
        _functions.update(functions)
    return outcomes, frozenset(reached)


@pytest.mark.parametrize("section", SECTIONS)
def test_every_example_raises_what_the_catalogue_shows(section: str) -> None:
    wrong = [f"{entry.name}\n  expected: {entry.expected}\n  got:      {got}"
             for entry, got in catalogue_run()[0][section] if not matches(entry.expected, got)]
    assert not wrong, "\n".join(wrong)


def test_the_catalogue_is_well_formed() -> None:
    headings = re.findall(r"^### (.*)$", CATALOGUE.read_text(), re.M)
    assert len(headings) == len(set(headings)), "duplicate headings"
    with_examples = {e.heading for e in ENTRIES}
    assert [h for h in headings if h not in with_examples] == [], "headings without an example"
    for entry in ENTRIES:
        first = entry.expected.splitlines()[0]
        if entry.language == "console":
            assert first == NO_ERROR or first.startswith("perceptspec"), f"{entry.name}: not what the CLI prints"
        else:
            assert first == NO_ERROR or re.match(r"^\w+: ", first), f"{entry.name}: '{first}' names no error type"


def test_errors_are_ours_outside_the_other_exceptions() -> None:
    """Sections S to C raise only PerceptSpecErrors; the rest is in X (not input errors)."""
    ours = {"SpecError", "ShapeError", "SignatureError"}
    for entry in ENTRIES:
        kind = entry.expected.split(":", 1)[0]
        if entry.section[0] in "SGYFMIBRC":
            assert kind in ours or entry.expected == NO_ERROR or entry.heading.startswith("R12"), entry.name


# --- every error site is in the catalogue -------------------------------------------------------------------------

#: a line that raises an error, or reports a problem that becomes a SpecError
SITE = re.compile(r"^\s*(raise \w|yield [f(\"]|problems\.append\()")

#: error sites the catalogue does not reach, each with the reason (a prefix of "<file>: <line>"; "$" ends a whole line)
NOT_IN_CATALOGUE: dict[str, str] = {
    "__main__.py: raise SystemExit(main())": "the command line's exit code (its messages are in L)",
    "_spec/_shape_ops.py: raise SpecError(\"Functional\", [_unknown_function(name)])":
        "Functional checks its name when built (S15): reached only if the registry changed since",
    "cli.py: raise CommandError(f\"{name}: the parameter fold counts":
        "`perceptspec check` checking perceptspec itself: fires only if the library is wrong",
    "cli.py: raise CommandError(f\"the actor-critic": "the same, for the actor-critic's outputs",
    "cli.py: raise CommandError(f\"output {key!r}": "the same, for the actor-critic's output shapes",
    "integrations/sb3_actions.py: raise NotImplementedError(": "SB3 calls it only to build its own action net, "
                                                                 "which SpecActorCriticPolicy never builds",
    "_spec/_descriptor.py: raise TypeError(f\"a descriptor kind named": "see X2 (a kind registered twice)",
    "__init__.py: raise AttributeError(": "Python's own `module has no attribute`",
    "_fold/rules/_torch_model.py: raise ImportError(": "needs torch absent: tests/test_fresh_process.py",
    "_torch/_signature.py: raise SignatureError(None, \"a dict\"":
        "a Mapping that is not a dict, after typeguard passed: unreachable in practice",
}


def error_sites() -> dict[tuple[str, int], str]:
    """(file, line) -> the source line, for every error site of the package (examples excluded)."""
    sites = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "examples" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if SITE.match(line) and "yield from" not in line:
                sites[(str(path), number)] = line.strip()
    return sites


def traced(run: Callable[[], Any]) -> set[tuple[str, int]]:
    """The (file, line) pairs of the package that run while `run()` runs."""
    lines: set[tuple[str, int]] = set()
    package = str(PACKAGE)

    def local(frame: types.FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            lines.add((frame.f_code.co_filename, frame.f_lineno))
        return local

    def tracer(frame: types.FrameType, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code.co_filename.startswith(package):
            lines.add((frame.f_code.co_filename, frame.f_lineno))
            return local
        return None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(previous)
    return lines


def statement_lines(path: str, number: int) -> Iterator[int]:
    """The line of a statement and its continuation lines (a multi-line raise is reached at any of them)."""
    source = Path(path).read_text().splitlines()
    yield number
    depth = source[number - 1].count("(") + source[number - 1].count("[") - source[number - 1].count(")") \
        - source[number - 1].count("]")
    while depth > 0 and number < len(source):
        number += 1
        depth += source[number - 1].count("(") + source[number - 1].count("[") - source[number - 1].count(")") \
            - source[number - 1].count("]")
        yield number


def test_the_catalogue_reaches_every_error_site() -> None:
    """A new error (a `raise`, a problem a descriptor reports) needs a catalogue entry, or a reason here."""
    reached = catalogue_run()[1]
    missing = []
    for (path, number), line in error_sites().items():
        where = f"{Path(path).relative_to(PACKAGE)}: {line}"
        if any(where == key[:-1] if key.endswith("$") else where.startswith(key) for key in NOT_IN_CATALOGUE):
            continue
        if not any((path, n) in reached for n in statement_lines(path, number)):
            missing.append(f"perceptspec/{Path(path).relative_to(PACKAGE)}:{number}: {line}")
    assert not missing, "error sites no catalogue example reaches:\n" + "\n".join(missing)


# --- regressions: gaps the property tests found, each fixed ----------------------------------------------------------

@pytest.mark.parametrize("key", ["x²", "½", "a\u0301", "ⅷ"])
def test_regression_keys_that_are_not_identifiers_work(key: str) -> None:
    """Issue #7 (fixed in d0eeca8): word characters that are not identifier characters made a SyntaxError."""
    module = ps.materialize(ps.Dense(in_keys=key, out_keys="h", hidden_units=[2]), {key: (4,)})
    assert module({key: torch.zeros(4)})["h"].shape == (2,)


def test_regression_nfkc_equal_keys_stay_distinct() -> None:
    """Issue #7 (fixed in d0eeca8): keys that Python's identifier normalisation makes equal ('ﬁx', 'fix') were
    one variable of the generated forward, a silent wrong result; they must stay two."""
    spec = ps.Graph({"a": ps.Functional(in_keys="ﬁx", out_keys="y", func="identity"),
                     "b": ps.Functional(in_keys="fix", out_keys="z", func="identity")}, out_keys=["y", "z"])
    module = ps.materialize(spec, {"ﬁx": (1,), "fix": (1,)})
    out = module({"ﬁx": torch.zeros(1), "fix": torch.ones(1)})
    assert (out["y"].item(), out["z"].item()) == (0.0, 1.0)


def test_regression_block_names_never_become_code(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue #7 (fixed in d0eeca8): a line break in a block name ended its comment in the generated forward, so a
    spec loaded from YAML could run code. A block name is data: loading never executes code, nor may materializing
    what was loaded."""
    name = 'h\n    print("INJECTED")\n    #'
    text = ps.to_yaml(ps.Graph({name: ps.Dense(in_keys="x", out_keys="y", hidden_units=[3])}, out_keys="y"))
    try:
        module = ps.materialize(ps.from_yaml(text), {"x": (2,)})
        module({"x": torch.zeros(2)})
    except ps.PerceptSpecError:
        pass
    assert "INJECTED" not in capsys.readouterr().out


def test_regression_functional_outputs_are_checked() -> None:
    """Issue #7: a Functional whose tensor function returns another shape than its shape function says so."""
    ps.register_function("tests.regression_lies", lambda shape: shape, lambda x: x.sum(-1))
    module = ps.materialize(ps.Functional(in_keys="x", out_keys="y", func="tests.regression_lies"), {"x": (4,)})
    with pytest.raises(ps.ShapeError, match="'y'"):
        module({"x": torch.zeros(2, 4)})


def test_regression_nan_in_torch_model_kwargs_is_refused_or_round_trips() -> None:
    """Issue #7: a spec must equal its round trips; a NaN kwarg (never equal to itself) breaks that."""
    try:
        spec = ps.TorchModel(in_keys="x", out_keys="y", module_factory="my_models:Mlp", kwargs={"eps": float("nan")})
    except ps.SpecError:
        return
    assert ps.from_yaml(ps.to_yaml(spec)) == spec


def test_regression_a_compose_target_without_a_signature_is_a_spec_error() -> None:
    """Issue #7: compose reports a target it cannot check as a SpecError naming it, not inspect's ValueError."""
    import gymnasium as gym

    with pytest.raises(ps.SpecError, match="builtins.max"):
        ps.compose({"policy": {"networks": [{"_target_": "builtins.max"}]}}, gym.spaces.Box(-1, 1, (4,)),
                   gym.spaces.Discrete(2))
