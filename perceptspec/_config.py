"""The composer config's schema: every section's known keys and value types, checked before anything is built.

A typo (`critc:`, `seeed:`) or a value of the wrong type (`seed: "abc"`) is a `SpecError` naming the key path,
with a did-you-mean suggestion, never silently ignored. A network entry's own arguments are checked against its
target's signature by the composer (only the target knows them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from perceptspec._errors import SpecError, did_you_mean
from perceptspec._maze import is_maze_config, translate
from perceptspec._yaml import load_yaml

CHECK_MODES = ("always", "first", "off")
#: every kind but 'none' needs networks; Maze's critic composers map to these (perceptspec._maze)
CRITIC_KINDS = ("state", "shared_state", "state_action", "shared_state_action", "delta_state", "none")

Check = Callable[[object], str | None]  # the problem with a value, or None


def _int_or_none(value: object) -> str | None:
    ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
    return None if ok else f"expected an int (or null), got {value!r}"


def _bool(value: object) -> str | None:
    return None if isinstance(value, bool) else f"expected a bool, got {value!r}"


def _one_of(options: tuple[str, ...]) -> Check:
    def check(value: object) -> str | None:
        if value in options:
            return None
        return f"expected one of {list(options)}, got {value!r}" + (
            did_you_mean(value, options) if isinstance(value, str) else "")
    return check


def _mapping_or_none(value: object) -> str | None:
    return None if value is None or isinstance(value, Mapping) else f"expected a mapping, got {value!r}"


def _network_list(value: object) -> str | None:
    """A non-empty list of network entries (one for all sub-steps or one per sub-step, in order), or a mapping of
    sub-step keys to entries (as Maze's configs may give them)."""
    entries = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
    if not value or not entries:
        return (f"expected a non-empty list of networks (each a mapping with a '_target_') or a mapping of sub-steps "
                f"to networks, got {value!r}")
    for i, entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("_target_"), str):
            return f"[{i}] expected a mapping with a '_target_' import path, got {entry!r}"
    return None


POLICY_KEYS: dict[str, Check] = {"networks": _network_list, "init": _mapping_or_none,
                                 "action_head_bias": _mapping_or_none}
CRITIC_KEYS: dict[str, Check] = {"kind": _one_of(CRITIC_KINDS), "networks": _network_list, "init": _mapping_or_none}
def _list_or_none(value: object) -> str | None:
    return None if value is None or isinstance(value, list) else f"expected a list, got {value!r}"


TOP_KEYS: dict[str, Check] = {"policy": _mapping_or_none, "critic": _mapping_or_none,
                              "distribution_overrides": _mapping_or_none,
                              "distribution_mapper_config": _list_or_none, "seed": _int_or_none,
                              "check": _one_of(CHECK_MODES), "check_finite": _bool,
                              "observations": _mapping_or_none}


def _positive_int(value: object) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return None if ok else f"expected a positive int, got {value!r}"


#: how observations are converted (perceptspec._observations)
OBSERVATION_KEYS: dict[str, Check] = {"discrete": _one_of(("one_hot", "embedding")), "embedding_dim": _positive_int,
                                      "normalize_images": _bool}
INIT_KEYS = ("body", "heads")


def load_config(config: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    """The config as a mapping (a YAML file is loaded with the bounds of `load_yaml`), checked against the schema."""
    if isinstance(config, Mapping):
        data: object = config
    else:
        path = Path(config)
        data = load_yaml(path.read_text(), f"config {path}")
    if not isinstance(data, Mapping):
        raise SpecError(f"config {config}", [f"expected a mapping at the top level, got {type(data).__name__}"])
    if is_maze_config(data):
        data = translate(data)
    check_config(data)
    return data


def check_config(cfg: Mapping[str, Any]) -> None:
    """Raise `SpecError` for an unknown key or a value of the wrong type anywhere in `cfg` (every problem at once,
    each named by its key path: 'critic.kind')."""
    problems = _section_problems(cfg, TOP_KEYS, "")
    policy, critic = cfg.get("policy"), cfg.get("critic")
    if policy is None:
        problems.append("policy: the section is required (a mapping with a non-empty 'networks' list)")
    if isinstance(policy, Mapping):
        problems += _section_problems(policy, POLICY_KEYS, "policy", required=("networks",))
    if isinstance(critic, Mapping):
        required = ("networks",) if critic.get("kind", "state") != "none" else ()
        problems += _section_problems(critic, CRITIC_KEYS, "critic", required=required)
    if isinstance(cfg.get("observations"), Mapping):
        problems += _section_problems(cfg["observations"], OBSERVATION_KEYS, "observations")
    for name, section in (("policy", policy), ("critic", critic)):
        init = section.get("init") if isinstance(section, Mapping) else None
        if isinstance(init, Mapping):
            problems += _section_problems(init, dict.fromkeys(INIT_KEYS, _mapping_or_none), f"{name}.init")
    if problems:
        raise SpecError("config", problems)


def _section_problems(section: Mapping[str, Any], keys: Mapping[str, Check], path: str,
                      required: tuple[str, ...] = ()) -> list[str]:
    prefix = f"{path}: " if path else ""
    problems = []
    for key, value in section.items():
        if key not in keys:
            problems.append(f"{prefix}unknown key {key!r}{did_you_mean(key, keys)}; known keys: {list(keys)}")
        elif (problem := keys[key](value)) is not None:
            problems.append(f"{path + '.' if path else ''}{key}: {problem}")
    return problems + [f"{path + '.' if path else ''}{key}: required" for key in required if key not in section]
