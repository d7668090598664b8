"""The `perceptspec` command line (also `python -m perceptspec`): look at the networks a composer config builds.

    perceptspec summary CONFIG --env ENV          a table per network (blocks, shapes, parameters)
    perceptspec render CONFIG --env ENV -o DIR    policy, critic and actor-critic drawings
    perceptspec check CONFIG --env ENV            compose, then one forward on a sampled observation
    perceptspec demo                              the seed examples (what `make demo` runs)
    perceptspec diff A B [--env ENV]              what changed, block by block, between two specs, configs or
                                                  saved models (and their fingerprints)

A failure prints one line to stderr (`perceptspec <command>: error: ...`) and exits with 1 (2 for a bad command
line); `--traceback` shows the whole traceback instead. Torch and gymnasium are imported only by the commands that
compose models, never by `--help`.
"""

from __future__ import annotations

import argparse
import os
import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import yaml

from perceptspec._fold._summary import shape_text

if TYPE_CHECKING:
    import gymnasium as gym

    from perceptspec._composer import Models

PROG = "perceptspec"
FORMATS = ("svg", "png", "pdf", "dot")

ENV_HELP = """\
the environment whose spaces the networks are composed for: a gymnasium id (CartPole-v1, or gymnasium's
'module:EnvId-v0' form), or 'module:Factory', an import path to an env class or a function returning an env, called
with --env-kwargs (e.g. perceptspec.examples.inventory_env:InventoryGridEnv)"""

EPILOG = """\
examples (from a clone of the repository):
  perceptspec summary perceptspec/examples/cartpole.yaml --env CartPole-v1
  perceptspec render perceptspec/examples/shared_complex.yaml \\
      --env perceptspec.examples.inventory_env:InventoryGridEnv -o out/example4 --format svg png
  perceptspec check perceptspec/examples/complex.yaml --env perceptspec.examples.inventory_env:InventoryGridEnv
  perceptspec demo -o out

CONFIG is a YAML file in the composer's layout (policy.networks, critic.networks, _target_ import paths); see
perceptspec/examples/*.yaml."""


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
        print(f"{PROG} {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 1


def one_line(error: BaseException) -> str:
    """An exception as one readable line: its type (unless it is a CommandError) and its message, with the lines
    of a multi-problem message (a SpecError's '- ...' list) joined by '; '."""
    lines = [line.strip().removeprefix("- ") for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if len(lines) > 1:
        text = f"{text} {'; '.join(lines[1:])}"
    if isinstance(error, CommandError):
        return text
    if isinstance(error, ModuleNotFoundError) and error.name in ("torch", "gymnasium"):
        text += f" (composing models needs {error.name}: pip install 'perceptspec[{_extra(error.name)}]')"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _extra(module: str) -> str:
    return "torch" if module == "torch" else "gym"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Look at the policy and critic networks a composer config builds for "
                                            "an environment: tables, drawings, a check.",
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
            sub.add_argument("config", metavar="CONFIG", type=Path, help="a composer config (YAML)")
            sub.add_argument("--env", required=True, metavar="ENV", help=ENV_HELP)
            sub.add_argument("--env-kwargs", metavar="YAML", type=_mapping, default={},
                             help="keyword arguments for the env, as a YAML/JSON mapping (e.g. '{history: 2}')")
            sub.add_argument("--allow", action="append", default=[], metavar="MODULE",
                             help="let the config's _target_s and TorchModel factories import code from MODULE (and "
                                  "its submodules); repeatable. Without it only perceptspec's examples and "
                                  "integrations and torch's layer classes are allowed (docs/security.md)")
        return sub

    command("summary", _summary, "print a table per network: blocks, keys and shapes, parameters")
    render = command("render", _render, "draw the policy, the critic and both together (graphviz)")
    render.add_argument("-o", "--output", required=True, type=Path, metavar="DIR",
                        help="directory for policy.<fmt>, critic.<fmt> and actor_critic.<fmt>")
    render.add_argument("--format", nargs="+", choices=FORMATS, default=["svg"], metavar="FMT",
                        help=f"one or more of {', '.join(FORMATS)} (default: svg)")
    command("check", _check, "compose the networks (validating specs and shapes), then run one forward pass on an "
                             "observation sampled from the env; exit 1 with the error if anything fails")
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


# --- the commands -----------------------------------------------------------------------------------------------------

def _summary(args: argparse.Namespace) -> int:
    import perceptspec as ps

    models, _, _ = _compose(args)
    print(_heading(args, models))
    for name, spec in models.specs.items():
        print(f"\n{name}")
        shared = _shared_keys(models, name)
        if shared:
            keys = ", ".join(f"{k} {shape_text(models.in_shapes[name][k])}" for k in shared)
            print(f"(reads {keys} from the policy)")
        if spec is None:
            module = _module(models, name)
            print(f"{type(module).__name__}: a plain torch module with {_numel(module):,} parameters (no spec, so no "
                  f"table of blocks)")
        else:
            print(ps.summary(spec, models.in_shapes[name]))
    return 0


def _render(args: argparse.Namespace) -> int:
    import perceptspec as ps

    models, _, _ = _compose(args)
    for path in ps.render_models(models, args.output, format=args.format):
        print(path)
    return 0


def _check(args: argparse.Namespace) -> int:
    import perceptspec as ps

    models, observation_space, action_space = _compose(args)
    parts = []
    for name, spec in models.specs.items():
        counted = _numel(_module(models, name))
        if spec is not None:
            folded = ps.count_parameters(spec, models.in_shapes[name])
            if folded != counted:
                raise CommandError(f"{name}: the parameter fold counts {folded:,}, the module holds {counted:,}")
        parts.append(f"{name} ({'spec' if spec is not None else 'plain module'}, {counted:,} parameters)")
    outputs = _forward_on_sample(models, observation_space, action_space)
    print(f"ok: {args.config} on {args.env}: {', '.join(parts)}; one actor-critic forward on a sampled observation "
          f"gave {outputs}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from perceptspec.examples.demo import main as demo

    demo(args.output)
    return 0


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


# --- helpers ----------------------------------------------------------------------------------------------------------

def _compose(args: argparse.Namespace) -> tuple[Models, gym.Space[Any], gym.Space[Any]]:
    """The models the config builds for the env's spaces, and the spaces."""
    import perceptspec as ps

    config: Path = args.config
    if not config.is_file():
        raise CommandError(f"config file '{config}' not found" if not config.exists()
                           else f"config '{config}' is not a file")
    env = make_env(args.env, args.env_kwargs)
    try:
        models = ps.compose(config, env.observation_space, env.action_space, allow=args.allow)
        return models, env.observation_space, env.action_space
    finally:
        env.close()


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


def _heading(args: argparse.Namespace, models: Models) -> str:
    shapes = ", ".join(f"{k} {shape_text(s)}" for step in models.obs_shapes.values() for k, s in step.items())
    logits = ", ".join(f"{k} {shape_text(s)}" for step in models.action_logits_shapes.values() for k, s in step.items())
    return (f"{args.config} on {args.env}\nobservations: {shapes}\naction logits: {logits}\n"
            f"critic: {models.critic_kind}")


def _shared_keys(models: Models, name: str) -> list[str]:
    """The keys a critic reads that its policy computes (a shared embedding)."""
    if not name.startswith("critic"):
        return []
    observations = {k for step in models.obs_shapes.values() for k in step}
    state = models.states[name].in_shapes if name in models.states else {}  # its own recurrent state
    return [k for k in models.in_shapes[name] if k not in observations and k not in state]


def _module(models: Models, name: str) -> Any:
    """The module of network `name` ('policy', 'critic', 'policy[0]')."""
    role, _, step = name.partition("[")
    modules = models.policies if role == "policy" else models.critics
    if not step:
        return next(iter(modules.values()))
    return next(m for s, m in modules.items() if str(s) == step.rstrip("]"))


def _numel(module: Any) -> int:
    return sum(int(p.numel()) for p in module.parameters())


def _forward_on_sample(models: Models, observation_space: gym.Space[Any], action_space: gym.Space[Any]) -> str:
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
    return ", ".join(f"{k} {tuple(outputs[k].shape)}" for k in expected)


def _value_is_scalar(models: Models, critic_spec: Any) -> bool:
    """Whether the critic outputs its value with shape () rather than (1,)."""
    from perceptspec import infer_shapes

    name = next(n for n, spec in models.specs.items() if spec is critic_spec)
    return infer_shapes(critic_spec, models.in_shapes[name]).get("value") == ()
