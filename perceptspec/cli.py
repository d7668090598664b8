"""The `perceptspec` command line (also `python -m perceptspec`): look at the networks a composer config builds,
at one spec file, or at the default networks for an env.

    perceptspec summary [FILE] --env ENV [--json] a table per network (blocks, shapes, parameters)
    perceptspec render [FILE] --env ENV -o DIR    policy, critic and actor-critic drawings
    perceptspec check [FILE] --env ENV [--json]   compose and fold every network; --forward also runs one forward
    perceptspec demo                              the seed examples (what `make demo` runs)
    perceptspec diff A B [--env ENV]              what changed, block by block, between two specs, configs or
                                                  saved models (and their fingerprints)

FILE is a composer config (YAML, the seed's layout) or a spec file (`ps.to_yaml`'s, a mapping with a `type`); a spec
file's input shapes come from `--in-shapes` or from the env's observation space. Without FILE, summary, render and
check look at the default networks for the env's spaces (`ps.compose(None, ...)`: Stable-Baselines3's default
policy and value networks, `perceptspec.templates.default_policy`). Summary, render and check work from the specs
alone, so they import no torch (gymnasium only to read the env's spaces) unless a network is a plain
`nn.Module`, a TorchModel block must be run to fold, or `check --forward` asks for a forward pass.

A failure prints one line to stderr (`perceptspec <command>: error: ...`) and exits with 1 (2 for a bad command
line); `--traceback` shows the whole traceback instead. With `--json` the result, or the error, is also printed to
stdout as one JSON object (docs/cli.md describes its fields).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import yaml

from perceptspec._fold._summary import shape_text

if TYPE_CHECKING:
    import gymnasium as gym

    from perceptspec._composer import ComposedSpecs, Models
    from perceptspec._spec import Block

PROG = "perceptspec"
FORMATS = ("svg", "png", "pdf", "dot")
#: the version of the `--json` objects' layout (docs/cli.md); raised when a field changes meaning or goes away
JSON_SCHEMA = 1

ENV_HELP = """\
the environment whose spaces the networks are composed for: a gymnasium id (CartPole-v1, or gymnasium's
'module:EnvId-v0' form), or 'module:Factory', an import path to an env class or a function returning an env, called
with --env-kwargs (e.g. perceptspec.examples.inventory_env:InventoryGridEnv)"""

EPILOG = """\
examples (from a clone of the repository):
  perceptspec summary perceptspec/examples/cartpole.yaml --env CartPole-v1
  perceptspec summary --env CartPole-v1              (no FILE: the default networks for the env's spaces)
  perceptspec summary perceptspec/examples/complex.yaml --env perceptspec.examples.inventory_env:InventoryGridEnv --json
  perceptspec render perceptspec/examples/shared_complex.yaml \\
      --env perceptspec.examples.inventory_env:InventoryGridEnv -o out/example4 --format svg png
  perceptspec check perceptspec/examples/complex.yaml --env perceptspec.examples.inventory_env:InventoryGridEnv
  perceptspec check perceptspec/examples/cartpole_policy_spec.yaml --in-shapes '{observation: [4]}' --forward
  perceptspec demo -o out

FILE is a YAML file: a composer config (policy.networks, critic.networks, _target_ import paths; see
perceptspec/examples/*.yaml) or a spec as ps.to_yaml writes it. Without FILE, summary, render and check compose the
default networks for --env (ps.compose(None, ...): SB3's default policy and value networks)."""


class CommandError(Exception):
    """A failure the command line reports as it is (no exception type in front)."""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: sys.argv[1:]); returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already printed
        return e.code if isinstance(e.code, int) else 1
    command: Callable[[argparse.Namespace], int] = args.run
    try:
        return command(args)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`perceptspec summary ... | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        if args.traceback:
            raise
        if getattr(args, "json", False):
            _print_json({"ok": False, "error": {"type": type(e).__name__, "message": one_line(e, typed=False)}})
        print(f"{PROG} {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 1


def one_line(error: BaseException, typed: bool = True) -> str:
    """An exception as one readable line: its type (unless it is a CommandError, or not `typed`) and its message,
    with the lines of a multi-problem message (a SpecError's '- ...' list) joined by '; '."""
    lines = [line.strip().removeprefix("- ") for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if len(lines) > 1:
        text = f"{text} {'; '.join(lines[1:])}"
    if isinstance(error, ModuleNotFoundError) and error.name in ("torch", "gymnasium"):
        text += f" (this needs {error.name}: pip install 'perceptspec[{_extra(error.name)}]')"
    if isinstance(error, CommandError) or not typed:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _extra(module: str) -> str:
    return "torch" if module == "torch" else "gym"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Look at the policy and critic networks a composer config builds for "
                                            "an environment (without a config: the default networks), or at a "
                                            "spec file: tables, drawings, a check.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traceback", action="store_true", help="on an error, show the full traceback")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, run: Callable[[argparse.Namespace], int], help: str,
                composes: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, epilog=EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(run=run)
        sub.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                         help="on an error, show the full traceback")
        if composes:
            sub.add_argument("config", metavar="FILE", type=Path, nargs="?", default=None,
                             help="a composer config (YAML) or a spec file (ps.to_yaml's YAML); without it, the "
                                  "default networks for --env's spaces (ps.compose(None, ...))")
            sub.add_argument("--env", metavar="ENV", help=ENV_HELP + " (required for a config and without FILE; "
                                                                      "for a spec file, its observation shapes are "
                                                                      "the inputs)")
            sub.add_argument("--env-kwargs", metavar="YAML", type=_mapping, default={},
                             help="keyword arguments for the env, as a YAML/JSON mapping (e.g. '{history: 2}')")
            sub.add_argument("--in-shapes", metavar="YAML", type=_mapping, default=None,
                             help="a spec file's input shapes, as a YAML/JSON mapping without batch dims "
                                  "(e.g. '{observation: [4]}'); instead of --env")
            sub.add_argument("--allow", action="append", default=[], metavar="MODULE",
                             help="let the config's _target_s and TorchModel factories import code from MODULE (and "
                                  "its submodules); repeatable. Without it only perceptspec's examples and "
                                  "integrations and torch's layer classes are allowed (docs/security.md)")
        return sub

    summary = command("summary", _summary, "print a table per network: blocks, keys and shapes, parameters")
    summary.add_argument("--json", action="store_true", help="print one JSON object instead (docs/cli.md)")
    render = command("render", _render, "draw the policy, the critic and both together (graphviz)")
    render.add_argument("-o", "--output", required=True, type=Path, metavar="DIR",
                        help="directory for policy.<fmt>, critic.<fmt> and actor_critic.<fmt> (a spec file: "
                             "spec.<fmt>)")
    render.add_argument("--format", nargs="+", choices=FORMATS, default=["svg"], metavar="FMT",
                        help=f"one or more of {', '.join(FORMATS)} (default: svg)")
    check = command("check", _check, "compose the networks, validating the config, every spec, its shapes and its "
                                     "heads against the env, from the specs alone; exit 1 with the error if "
                                     "anything fails")
    check.add_argument("--forward", action="store_true",
                       help="also build the torch modules and run one forward pass on an observation sampled from "
                            "the env (zeros of the input shapes for a spec file without --env)")
    check.add_argument("--json", action="store_true", help="print one JSON object instead (docs/cli.md)")
    compare = command("diff", _diff, "what changed between two networks, block by block (added and removed blocks, "
                                     "fields old -> new, rewired keys), with each spec's fingerprint; A and B are "
                                     "spec YAML files, composer configs (with --env) or files saved by ps.save",
                      composes=False)
    compare.add_argument("a", metavar="A", type=Path, help="the spec before: spec YAML, a config, or .safetensors")
    compare.add_argument("b", metavar="B", type=Path, help="the spec after")
    compare.add_argument("--env", metavar="ENV", help="for configs: " + ENV_HELP)
    compare.add_argument("--env-kwargs", metavar="YAML", type=_mapping, default={},
                         help="keyword arguments for the env, as a YAML/JSON mapping")
    compare.add_argument("--allow", action="append", default=[], metavar="MODULE",
                         help="let a config's _target_s import code from MODULE (repeatable)")
    demo = command("demo", _demo, "run the seed examples: summaries, drawings and short rollouts", composes=False)
    demo.add_argument("-o", "--output", type=Path, default=Path("out"), metavar="DIR",
                      help="directory for the drawings (default: out)")
    return parser


def _mapping(text: str) -> dict[str, Any]:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise argparse.ArgumentTypeError(f"not YAML: {' '.join(str(e).split())}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a mapping such as '{{history: 2}}', got {text!r}")
    return value


# --- what the commands look at ----------------------------------------------------------------------------------------

class _Subject:
    """The networks of the file, from the specs alone: the composer's (a config, or without a file the default
    networks, and an env), or one spec's."""

    def __init__(self, args: argparse.Namespace) -> None:
        path: Path | None = args.config
        self.path, self.env_name = path, args.env
        #: what the output calls the networks' source: the file, or the default networks
        self.label = "default networks" if path is None else str(path)
        data: Any = None if path is None else self._read(path)
        self.spec_file = isinstance(data, Mapping) and "type" in data
        self.observation_space: gym.Space[Any] | None = None
        self.action_space: gym.Space[Any] | None = None
        if path is None:
            if args.in_shapes is not None:
                raise CommandError("--in-shapes gives a spec file's input shapes, but there is no FILE (the default "
                                   "networks' inputs come from --env)")
            if args.env is None:
                raise CommandError("without FILE the default networks are composed for an env: give it (--env ENV), "
                                   "or a composer config or spec FILE")
        elif args.in_shapes is not None and not self.spec_file:
            raise CommandError(f"--in-shapes gives a spec file's input shapes, but '{path}' is a composer config "
                               f"(its networks' inputs come from --env)")
        if args.env is None and (not self.spec_file or args.in_shapes is None):
            raise CommandError(f"'{path}' is a composer config: give the env its networks are for (--env ENV)"
                               if not self.spec_file else
                               f"'{path}' is a spec: give its input shapes (--in-shapes '{{key: [4]}}') or an env "
                               f"whose observations it reads (--env ENV)")
        if args.env is not None:
            env = make_env(args.env, args.env_kwargs)
            self.observation_space, self.action_space = env.observation_space, env.action_space
            env.close()
        #: network name -> (its spec, None for a plain module; its input shapes)
        self.spec_networks: dict[str, tuple[Block | None, dict[str, tuple[int, ...]]]]
        if self.spec_file:
            self.composed: ComposedSpecs | None = None
            self.spec_networks = {"spec": self._spec_network(data, args.in_shapes)}
        else:
            from perceptspec._composer import compose_specs

            assert self.observation_space is not None and self.action_space is not None
            self.composed = compose_specs(data if isinstance(data, Mapping) else path, self.observation_space,
                                          self.action_space, allow=args.allow)  # path None: the default networks
            self.spec_networks = {name: (spec, self.composed.in_shapes[name])
                                  for name, spec in self.composed.specs.items()}

    @staticmethod
    def _read(path: Path) -> Any:
        from perceptspec._yaml import load_yaml

        if not path.is_file():
            raise CommandError(f"config file '{path}' not found" if not path.exists()
                               else f"config '{path}' is not a file")
        return load_yaml(path.read_text(), f"config {path}")

    def _spec_network(self, data: Mapping[str, Any], in_shapes: Mapping[str, Any] | None
                      ) -> tuple[Block, dict[str, tuple[int, ...]]]:
        from perceptspec import from_dict
        from perceptspec import spaces

        spec = from_dict(data)
        if in_shapes is None:
            assert self.observation_space is not None
            observed = spaces.obs_shapes(self.observation_space)
            missing = [k for k in spec.in_keys if k not in observed]
            if missing:
                raise CommandError(f"the spec reads {missing}, which the env's observations {list(observed)} lack")
            in_shapes = {k: observed[k] for k in spec.in_keys}
        return spec, {str(k): tuple(v) if isinstance(v, (list, tuple)) else v for k, v in in_shapes.items()}

    def heading(self) -> str:
        where = f" on {self.env_name}" if self.env_name is not None else ""
        if self.composed is None:
            return f"{self.label}{where}: a spec"
        obs, logits = self.composed.obs_shapes, self.composed.action_logits_shapes
        shapes = ", ".join(f"{k} {shape_text(s)}" for step in obs.values() for k, s in step.items())
        heads = ", ".join(f"{k} {shape_text(s)}" for step in logits.values() for k, s in step.items())
        return (f"{self.label}{where}\nobservations: {shapes}\naction logits: {heads}\n"
                f"critic: {self.composed.critic_kind}")

    def plain_module(self, name: str) -> Any:
        """The module of plain network `name` ('policy', 'critic', 'policy[0]')."""
        assert self.composed is not None
        return _by_network_name(self.composed.policies, self.composed.critics, name)

    def shared_keys(self, name: str) -> list[str]:
        """The keys a critic reads that its policy computes (a shared embedding)."""
        if self.composed is None or not name.startswith("critic"):
            return []
        observations = {k for step in self.composed.obs_shapes.values() for k in step}
        states = self.composed.states
        state = states[name].in_shapes if name in states else {}  # its own recurrent state
        return [k for k in self.composed.in_shapes[name] if k not in observations and k not in state]


def _by_network_name(policies: Mapping[Any, Any], critics: Mapping[Any, Any], name: str) -> Any:
    role, _, step = name.partition("[")
    modules = policies if role == "policy" else critics
    if not step:
        return next(iter(modules.values()))
    return next(m for s, m in modules.items() if str(s) == step.rstrip("]"))


# --- the commands -----------------------------------------------------------------------------------------------------

def _summary(args: argparse.Namespace) -> int:
    import perceptspec as ps

    subject = _Subject(args)
    if args.json:
        _print_json({"ok": True, **_json_head(args, subject),
                     "networks": {name: _network_json(subject, name, spec, shapes)
                                  for name, (spec, shapes) in subject.spec_networks.items()}})
        return 0
    lines = [subject.heading()]  # all of it worked out before anything is printed
    for name, (spec, in_shapes) in subject.spec_networks.items():
        lines.append(f"\n{name}")
        shared = subject.shared_keys(name)
        if shared:
            keys = ", ".join(f"{k} {shape_text(in_shapes[k])}" for k in shared)
            lines.append(f"(reads {keys} from the policy)")
        if spec is None:
            module = subject.plain_module(name)
            lines.append(f"{type(module).__name__}: a plain torch module with {_numel(module):,} parameters (no "
                         f"spec, so no table of blocks)")
        else:
            lines.append(ps.summary(spec, in_shapes))
    print("\n".join(lines))
    return 0


def _render(args: argparse.Namespace) -> int:
    import perceptspec as ps

    subject = _Subject(args)
    if subject.composed is None:
        spec, in_shapes = subject.spec_networks["spec"]
        assert spec is not None
        paths = [ps.render(spec, in_shapes, args.output / f"spec.{fmt}") for fmt in args.format]
    else:
        paths = ps.render_models(subject.composed, args.output, format=args.format)
    for path in paths:
        print(path)
    return 0


def _check(args: argparse.Namespace) -> int:
    import perceptspec as ps

    subject = _Subject(args)
    counts = {name: (ps.count_parameters(spec, shapes) if spec is not None
                     else _numel(subject.plain_module(name)))
              for name, (spec, shapes) in subject.spec_networks.items()}
    outputs = _forward(args, subject, counts) if args.forward else None
    if args.json:
        _print_json({"ok": True, **_json_head(args, subject),
                     "networks": {name: {"kind": "spec" if spec is not None else "module", "parameters": counts[name]}
                                  for name, (spec, _) in subject.spec_networks.items()},
                     "forward": None if outputs is None else {k: list(shape) for k, shape in outputs.items()}})
        return 0
    parts = [f"{name} ({'spec' if spec is not None else 'plain module'}, {counts[name]:,} parameters)"
             for name, (spec, _) in subject.spec_networks.items()]
    where = f" on {args.env}" if args.env is not None else ""
    ran = ("" if outputs is None else
           f"; one {'forward' if subject.composed is None else 'actor-critic forward'} on "
           f"{'a sampled observation' if subject.observation_space is not None else 'zeros'} gave "
           f"{', '.join(f'{k} {shape}' for k, shape in outputs.items())}")
    print(f"ok: {subject.label}{where}: {', '.join(parts)}{ran}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from perceptspec.examples.demo import main as demo

    demo(args.output)
    return 0


# --- helpers ----------------------------------------------------------------------------------------------------------

def _diff(args: argparse.Namespace) -> int:
    import perceptspec as ps

    before, after = _specs(args.a, args), _specs(args.b, args)
    if len(before) == 1 and len(after) == 1:  # one network each (a spec file, a saved module): whatever its name
        pairs = [("", next(iter(before.values())), next(iter(after.values())))]
    else:
        pairs = [(name, before.get(name), after.get(name)) for name in dict.fromkeys([*before, *after])]
    for name, a, b in pairs:
        heading = f"{name}: " if name else ""
        if a is None or b is None:
            print(f"{heading}only in {args.a if b is None else args.b}")
            continue
        print(f"{heading}{ps.fingerprint(a)[:12]} -> {ps.fingerprint(b)[:12]}")
        print(ps.diff(a, b))
    return 0


def _specs(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The specs in `path` by network name: a file saved by ps.save, a spec's YAML, or a config composed for --env
    (a network given as a plain torch module has no spec and is left out)."""
    import perceptspec as ps
    from perceptspec._saved import saved_specs
    from perceptspec._yaml import load_yaml

    if not path.is_file():
        raise CommandError(f"'{path}' not found" if not path.exists() else f"'{path}' is not a file")
    if path.suffix == ".safetensors":
        return saved_specs(path)
    data = load_yaml(path.read_text(), str(path))
    if isinstance(data, Mapping) and "type" in data:
        return {"spec": ps.from_dict(data)}
    if args.env is None:
        raise CommandError(f"'{path}' is a composer config (no 'type' at its top): give --env ENV to compose its "
                           f"networks")
    env = make_env(args.env, args.env_kwargs)
    try:
        models = ps.compose(path, env.observation_space, env.action_space, allow=args.allow)
    finally:
        env.close()
    return {name: spec for name, spec in models.specs.items() if spec is not None}


def _print_json(value: Mapping[str, Any]) -> None:
    print(json.dumps({"schema": JSON_SCHEMA, **value}, indent=2))


def _json_head(args: argparse.Namespace, subject: _Subject) -> dict[str, Any]:
    """The fields every --json result starts with: the file (None: the default networks), the env, and for a
    config the shapes by sub-step."""
    head: dict[str, Any] = {"file": None if args.config is None else str(args.config),
                            "kind": "spec" if subject.composed is None else "config", "env": args.env}
    if subject.composed is not None:
        head["observations"] = {str(s): _shapes_json(shapes) for s, shapes in subject.composed.obs_shapes.items()}
        head["action_logits"] = {str(s): _shapes_json(shapes)
                                 for s, shapes in subject.composed.action_logits_shapes.items()}
        head["critic"] = subject.composed.critic_kind
    return head


def _shapes_json(shapes: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    return {k: list(shape) for k, shape in shapes.items()}


def _network_json(subject: _Subject, name: str, spec: Block | None, in_shapes: Mapping[str, tuple[int, ...]]
                  ) -> dict[str, Any]:
    """One network of `summary --json`: its inputs, outputs and parameters, and for a spec one entry per block."""
    if spec is None:
        module = subject.plain_module(name)
        return {"kind": "module", "class": type(module).__name__, "inputs": _shapes_json(in_shapes),
                "parameters": _numel(module)}
    from perceptspec._fold._params import block_parameters
    from perceptspec._fold._rules import label_rules
    from perceptspec._fold._shapes import trace

    t = trace(spec, in_shapes)
    params = block_parameters(t)
    blocks = [{"path": e.path, "type": type(e.block).__name__,
               "layer": label_rules.lookup(type(e.block))(e.block, t.ins(e)),
               "inputs": {k: list(t.shapes[k]) for k in e.ins}, "outputs": {k: list(t.shapes[k]) for k in e.outs},
               "parameters": params[e.path]} for e in t.program.eqns]
    return {"kind": "spec", "inputs": _shapes_json(in_shapes),
            "outputs": {k: list(t.shapes[k]) for k in t.program.outputs}, "parameters": sum(params.values()),
            "shared_from_policy": subject.shared_keys(name), "blocks": blocks}


def _forward(args: argparse.Namespace, subject: _Subject, counts: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """`check --forward`: build the modules (the config's through `ps.compose`), check that each holds the
    parameters the fold counted, and run one forward; the shapes of what it returned."""
    import perceptspec as ps

    if subject.composed is None:
        import torch

        spec, in_shapes = subject.spec_networks["spec"]
        assert spec is not None
        module = ps.materialize(spec, in_shapes, seed=0)
        _check_count("spec", counts["spec"], _numel(module))
        with torch.no_grad():
            outputs = module({k: torch.zeros(1, *shape) for k, shape in in_shapes.items()})
        return {k: tuple(v.shape) for k, v in outputs.items()}
    assert subject.observation_space is not None and subject.action_space is not None
    models = ps.compose(subject.path, subject.observation_space, subject.action_space,  # None: the defaults
                        allow=args.allow)
    for name in models.specs:
        _check_count(name, counts[name], _numel(_by_network_name(models.policies, models.critics, name)))
    return _forward_on_sample(models, subject.observation_space, subject.action_space)


def _check_count(name: str, folded: int, counted: int) -> None:
    if folded != counted:
        raise CommandError(f"{name}: the parameter fold counts {folded:,}, the module holds {counted:,}")


def make_env(env: str, kwargs: Mapping[str, Any]) -> gym.Env[Any, Any]:
    """The env `env` names: 'module:Factory' (a class or function, called with `kwargs`) if the module has that
    attribute, else a gymnasium id (which may itself read 'module:EnvId-v0')."""
    import gymnasium as gym

    if ":" in env:
        module_name, _, attr = env.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise CommandError(f"--env {env!r}: cannot import module '{module_name}': {e}") from None
        factory = getattr(module, attr, None)
        if factory is not None:
            if not callable(factory):
                raise CommandError(f"--env {env!r}: '{attr}' in '{module_name}' is not an env class or function")
            made = factory(**kwargs)
            if not (hasattr(made, "observation_space") and hasattr(made, "action_space")):
                raise CommandError(f"--env {env!r}: {attr}(...) returned {type(made).__name__}, not an env with "
                                   f"observation_space and action_space")
            return cast("gym.Env[Any, Any]", made)  # any object with the two spaces will do
    made_by_gym: gym.Env[Any, Any] = gym.make(env, **kwargs)
    return made_by_gym


def _numel(module: Any) -> int:
    return sum(int(p.numel()) for p in module.parameters())


def _forward_on_sample(models: Models, observation_space: gym.Space[Any], action_space: gym.Space[Any]
                       ) -> dict[str, tuple[int, ...]]:
    """Run the actor-critic once on an observation sampled from the env's space (batch of 1): a state-action critic
    runs after the policy, on an action sampled from the action space. Check the outputs' shapes."""
    import numpy as np
    import torch

    from perceptspec import initial_state, spaces
    from perceptspec._observations import flat_values, module_inputs, preprocessing

    observation_space.seed(0)
    sample = flat_values(observation_space, observation_space.sample())  # raw: indices, pixels, as the env gives
    inputs = module_inputs(preprocessing([observation_space]), {k: np.asarray(v)[None] for k, v in sample.items()})
    for name in models.states:  # recurrent networks start from their initial state
        spec = models.specs[name]
        assert spec is not None  # only specs carry a state layout
        inputs.update(initial_state(spec, 1))
    with torch.no_grad():
        if models.critic_kind == "state_action":
            outputs = dict(models.policy(inputs))
            actions = {k: torch.zeros(1, *shape) for k, shape in spaces.action_shapes(action_space).items()}
            critic = models.critic
            assert critic is not None  # a state_action config has a critic
            outputs.update(critic({**inputs, **outputs, **actions}))
        else:
            outputs = models.actor_critic(inputs)
    expected = dict(next(iter(models.action_logits_shapes.values())))
    if models.critics:
        critic_spec = next((spec for name, spec in models.specs.items() if name.startswith("critic")), None)
        expected["value"] = () if critic_spec is not None and _value_is_scalar(models, critic_spec) else (1,)
    if not isinstance(outputs, Mapping):
        raise CommandError(f"the actor-critic returned {type(outputs).__name__}, not a dict of tensors")
    for key, shape in expected.items():
        if key not in outputs:
            raise CommandError(f"the actor-critic's outputs {sorted(outputs)} lack {key!r}")
        got = tuple(outputs[key].shape)
        if got != (1, *shape):
            raise CommandError(f"output {key!r}: expected shape {(1, *shape)} for a batch of 1, got {got}")
    return {k: tuple(outputs[k].shape) for k in expected}


def _value_is_scalar(models: Models, critic_spec: Any) -> bool:
    """Whether the critic outputs its value with shape () rather than (1,)."""
    from perceptspec import infer_shapes

    name = next(n for n, spec in models.specs.items() if spec is critic_spec)
    return infer_shapes(critic_spec, models.in_shapes[name]).get("value") == ()
