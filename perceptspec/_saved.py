"""`save` / `load`: a materialized module (or a composer's policy and critic) as one safetensors file.

The file holds the weights as tensors and, in its metadata (strings only), everything needed to build the module
again: the spec as YAML, the input shapes, the check settings, the seed when known and the perceptspec version.
Loading reads tensors and YAML, nothing else: safetensors has no code path (unlike pickle or `torch.load` of
arbitrary objects), the YAML goes through `from_yaml`'s bounds, and a `TorchModel` factory in the spec is imported
only under the allow-list (`ps.allow`, or `load(..., allow=[...])`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from typeguard import CollectionCheckStrategy, TypeCheckError, check_type

from perceptspec._composer import Models, Network, StepKey, assemble_models, network_name
from perceptspec._errors import SpecError
from perceptspec._fold._serialize import from_yaml, to_yaml
from perceptspec._spec import Block
from perceptspec._trust import allowing

if TYPE_CHECKING:
    import torch

    from perceptspec._torch import SpecModule

FORMAT = "perceptspec/1"
_MODULE, _MODELS = "module", "models"


def save(module_or_models: SpecModule | Models, path: str | Path) -> Path:
    """Write a materialized module (`ps.materialize`) or a composer's `Models` to one safetensors file.

    The weights keep their dtypes; the safetensors metadata holds the spec YAML, the input shapes, the seed
    and the settings, so `load` rebuilds the module without pickle.

    Arguments:
        module_or_models: a `SpecModule`, or `Models` whose networks are all specs.
        path: the file to write.

    Returns:
        The path written.

    Examples:
        >>> module = ps.materialize(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[16]), {"obs": (4,)}, seed=0)
        >>> ps.save(module, "dense.safetensors").name
        'dense.safetensors'
    """
    from safetensors.torch import save_file

    from perceptspec._torch import SpecModule

    path = Path(path)
    if isinstance(module_or_models, SpecModule):
        tensors = _module_tensors(module_or_models, "module")
        header: dict[str, Any] = {"kind": _MODULE, **_module_header(module_or_models)}
    elif isinstance(module_or_models, Models):
        tensors, header = _models_tensors_and_header(module_or_models)
    else:
        raise SpecError("save", [f"expected a module made by ps.materialize or the Models of ps.compose, got "
                                 f"{type(module_or_models).__qualname__}"])
    meta = {"format": FORMAT, "perceptspec_version": _version(), "header": json.dumps(header)}
    save_file(tensors, str(path), metadata=meta)
    return path


def load(path: str | Path, *, device: str | torch.device = "cpu",
         allow: Iterable[str] = ()) -> SpecModule | Models:
    """The module (or `Models`) saved at `path` by `save`, each tensor in the dtype it was saved in.

    Arguments:
        path: a file written by `save`.
        device: where the tensors go.
        allow: modules a `TorchModel` factory in the saved spec may be imported from, for this call only (see
            `ps.allow`); nothing else is imported.

    Examples:
        >>> module = ps.materialize(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[16]), {"obs": (4,)}, seed=0)
        >>> ps.load(ps.save(module, "dense.safetensors")).spec == module.spec
        True
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as file:
            meta = file.metadata() or {}
            # cloned into fresh allocations: a tensor over the file's buffer may be misaligned, and the CPU kernels
            # then sum in another order (outputs off by an ulp from the saved module's)
            tensors = {name: file.get_tensor(name).clone() for name in file.keys()}
    except (OSError, SafetensorError) as e:  # not there, not safetensors, truncated
        raise SpecError(f"load {path}", [f"cannot read it as a safetensors file: {e}"]) from None
    if meta.get("format") != FORMAT:
        raise SpecError(f"load {path}", [f"expected a file written by ps.save (format {FORMAT!r}), got format "
                                         f"{meta.get('format')!r}"])
    header = _header(meta, path)
    with allowing(allow, "load(allow=...)"):
        if header["kind"] == _MODULE:
            return _rebuild_module(header, _prefixed(tensors, "module"), f"load {path}")
        return _rebuild_models(header, tensors, path)


def saved_specs(path: str | Path) -> dict[str, Block]:
    """The specs in a file written by `save`, by network name ('module' for one module), read from the file's
    metadata alone: no tensor is read and torch is not imported (the safetensors header is JSON after its length)."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            length = int.from_bytes(file.read(8), "little")
            if length > MAX_HEADER:
                raise ValueError(f"a header of {length:,} bytes, more than {MAX_HEADER:,}")
            meta = json.loads(file.read(length)).get("__metadata__") or {}
    except (OSError, ValueError, AttributeError) as e:
        raise SpecError(f"load {path}", [f"cannot read it as a safetensors file: {e}"]) from None
    if meta.get("format") != FORMAT:
        raise SpecError(f"load {path}", [f"expected a file written by ps.save (format {FORMAT!r}), got format "
                                         f"{meta.get('format')!r}"])
    header = _header(meta, path)
    if header["kind"] == _MODULE:
        return {"module": from_yaml(header["spec"])}
    return {network["name"]: from_yaml(network["spec"]) for network in header["networks"]}


#: the largest safetensors header `saved_specs` reads (safetensors itself refuses more than 100 MB)
MAX_HEADER = 100_000_000


# --- one module ----------------------------------------------------------------------------------------------------

def _module_header(module: SpecModule) -> dict[str, Any]:
    return {"spec": to_yaml(module.spec), "in_shapes": {k: list(v) for k, v in module.in_shapes.items()},
            "check": module.check, "check_finite": module.check_finite, "allow_extra_keys": module.allow_extra_keys,
            "seed": module.seed, "training": module.training,
            "frozen": [name for name, p in module.named_parameters() if not p.requires_grad]}


def _module_tensors(module: SpecModule, prefix: str) -> dict[str, torch.Tensor]:
    """The module's state, keyed '<prefix>.<state_dict key>', after checking a fresh build of its spec has the same
    keys and shapes (a parametrization or a replaced block would save weights no spec can take back)."""
    from perceptspec._torch import materialize

    state = module.state_dict()
    fresh = materialize(module.spec, module.in_shapes, seed=0).state_dict()
    problems = [f"'{k}' is not in a module built from the spec" for k in state if k not in fresh]
    problems += [f"'{k}' is missing" for k in fresh if k not in state]
    problems += [f"'{k}' has shape {tuple(state[k].shape)}, the spec gives {tuple(fresh[k].shape)}"
                 for k in state if k in fresh and state[k].shape != fresh[k].shape]
    if problems:
        raise SpecError(f"save ({prefix})", [*problems, "the module no longer matches its spec (a parametrization, a "
                                             "replaced block or layer?): remove the change (e.g. torch.nn.utils."
                                             "parametrize.remove_parametrizations) before saving"])
    tensors: dict[str, torch.Tensor] = {}
    storages: set[tuple[int, int]] = set()
    for key, tensor in state.items():
        value = tensor.detach().cpu().contiguous()
        storage = (value.untyped_storage().data_ptr(), value.untyped_storage().nbytes())
        tensors[f"{prefix}.{key}"] = value.clone() if storage in storages else value  # safetensors refuses sharing
        storages.add(storage)
    return tensors


def _rebuild_module(header: Mapping[str, Any], state: dict[str, torch.Tensor], where: str) -> SpecModule:
    from perceptspec._torch import materialize

    spec = from_yaml(header["spec"])
    in_shapes = {k: tuple(v) for k, v in header["in_shapes"].items()}
    module = materialize(spec, in_shapes, seed=header.get("seed") if header.get("seed") is not None else 0,
                         check=header["check"], allow_extra_keys=header["allow_extra_keys"],
                         check_finite=header["check_finite"])
    try:
        module.load_state_dict(state, assign=True)  # assign: the saved tensors themselves, dtype and device kept
    except RuntimeError as e:
        raise SpecError(where, [f"the saved weights do not fit the saved spec: {' '.join(str(e).split())}"]) from None
    module.train(header["training"])
    for name, p in module.named_parameters():
        p.requires_grad_(name not in header["frozen"])
    return module


# --- a composer's Models -------------------------------------------------------------------------------------------

def _models_tensors_and_header(models: Models) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from perceptspec._torch import SpecModule

    tensors: dict[str, torch.Tensor] = {}
    networks = []
    for role, modules in (("policy", models.policies), ("critic", models.critics)):
        for step, module in modules.items():
            name = network_name(role, step, len(modules))
            if not isinstance(module, SpecModule):
                raise SpecError("save", [f"network '{name}' is a plain {type(module).__qualname__}, not built from a "
                                         f"spec: ps.save stores specs and weights; save its state_dict instead"])
            tensors.update(_module_tensors(module, name))
            networks.append({"name": name, "role": role, "step": step, **_module_header(module)})
    header = {"kind": _MODELS, "networks": networks, "critic_kind": models.critic_kind,
              "steps": [{"step": step, "obs_shapes": {k: list(v) for k, v in models.obs_shapes[step].items()},
                         "action_logits_shapes": {k: list(v) for k, v in models.action_logits_shapes[step].items()}}
                        for step in models.obs_shapes]}
    return tensors, header


def _rebuild_models(header: Mapping[str, Any], tensors: dict[str, torch.Tensor], path: Path) -> Models:
    obs: dict[StepKey, dict[str, tuple[int, ...]]] = {}
    logits: dict[StepKey, dict[str, tuple[int, ...]]] = {}
    for saved in header["steps"]:
        obs[saved["step"]] = {k: tuple(v) for k, v in saved["obs_shapes"].items()}
        logits[saved["step"]] = {k: tuple(v) for k, v in saved["action_logits_shapes"].items()}
    built: dict[str, dict[StepKey, Network]] = {"policy": {}, "critic": {}}
    for network in header["networks"]:
        module = _rebuild_module(network, _prefixed(tensors, network["name"]), f"load {path} ({network['name']})")
        built[network["role"]][network["step"]] = Network(module, module.spec, dict(module.in_shapes), {})
    return assemble_models(built["policy"], built["critic"], obs, logits, header["critic_kind"])


# --- the file's parts ----------------------------------------------------------------------------------------------

def _header(meta: Mapping[str, str], path: Path) -> dict[str, Any]:
    """The file's header, checked field by field (a file may come from anyone: no raw KeyError or TypeError)."""
    try:
        header = json.loads(meta["header"])
    except (KeyError, ValueError, RecursionError) as e:
        raise SpecError(f"load {path}", [f"the metadata has no readable 'header': {type(e).__name__}: {e}"]) from None
    kinds: dict[object, type] = {_MODULE: _ModuleHeader, _MODELS: _ModelsHeader}
    expected = kinds.get(header.get("kind") if isinstance(header, dict) else None)
    if expected is None:
        raise SpecError(f"load {path}", [f"the header is not one ps.save writes: expected a mapping whose 'kind' is "
                                         f"'{_MODULE}' or '{_MODELS}'"])
    try:
        check_type(header, expected, collection_check_strategy=CollectionCheckStrategy.ALL_ITEMS)
    except TypeCheckError as e:
        raise SpecError(f"load {path}", [f"the header is not one ps.save writes: {' '.join(str(e).split())}"]) from None
    return dict(header)


class _NetworkFields(TypedDict):
    spec: str
    in_shapes: dict[str, list[int]]
    check: str
    check_finite: bool
    allow_extra_keys: bool
    seed: int | None
    training: bool
    frozen: list[str]


class _ModuleHeader(_NetworkFields):
    kind: Literal["module"]


class _SavedNetwork(_NetworkFields):
    name: str
    role: Literal["policy", "critic"]
    step: int | str


class _ModelsHeader(TypedDict):
    kind: Literal["models"]
    networks: list[_SavedNetwork]
    critic_kind: str
    steps: list[_SavedStep]


class _SavedStep(TypedDict):
    step: int | str
    obs_shapes: dict[str, list[int]]
    action_logits_shapes: dict[str, list[int]]


def _prefixed(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def _version() -> str:
    try:
        return metadata.version("perceptspec")
    except metadata.PackageNotFoundError:
        return "unknown"
