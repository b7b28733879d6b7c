"""Saving and loading models: our safetensors format, and the published BrainBERT ``.pth`` checkpoint.

Our checkpoint is a directory::

    model.safetensors        weights (no pickle); its header metadata repeats the model config
    config.json              {"format", "format_version", "model": ModelConfig, "weights_sha256", "training",
                              "software"}
    model_card.md            human summary: data, steps, losses, software versions, weights sha256
    training_state.safetensors + training_state.json
                             only in resumable checkpoints: optimizer tensors, RNG states, loss history /
                             step, scheduler, optimizer hyper-parameters (JSON, no pickle)

Every file is written under a temporary name in the target folder and renamed into place.

The published checkpoint ``stft_large_pretrained.pth`` is a torch pickle of ``{"model": state_dict,
"model_cfg": OmegaConf DictConfig, "optim": ..., "scheduler": ...}``. It is read with ``weights_only=True``;
an OmegaConf config is read as plain data through inert stand-ins bound to the exact class names such a pickle
references (:mod:`.omegaconf_plain`): omegaconf is never imported, and no callable a file names is ever run.
Nothing is ever unpickled without the weights-only restrictions.

Errors about checkpoint files raise :class:`CheckpointError` (exit code 65, EX_DATAERR from sysexits.h:
the input file is malformed), a :class:`~bids_brainbert.errors.BidsBrainbertError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import platform
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .. import __version__
from ..bids.derivatives import atomic_path
from ..errors import EXIT_CHECKPOINT, BidsBrainbertError, CheckpointError
from . import omegaconf_plain
from .encoder import BrainBertPretrainModel, ModelConfig, count_parameters, sinusoidal_positions

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "model_card.md"
STATE_TENSORS_NAME = "training_state.safetensors"
STATE_JSON_NAME = "training_state.json"
FORMAT = "bids-brainbert-model"
FORMAT_VERSION = 1

PUBLISHED_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


# --------------------------------------------------------------------------------------------------- helpers
def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def _atomic_write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def weights_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def software_versions() -> dict[str, str]:
    import numpy
    import safetensors

    return {"bids_brainbert": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "safetensors": safetensors.__version__, "python": platform.python_version()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()   # numpy arrays and scalars
    return value


# ------------------------------------------------------------------------------------------ our format: save
def save_checkpoint(directory: str | os.PathLike, model: BrainBertPretrainModel, config: ModelConfig | None = None,
                    extra: Mapping[str, Any] | None = None, *, optimizer: torch.optim.Optimizer | None = None,
                    training_state: Mapping[str, Any] | None = None,
                    training_tensors: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` to ``directory`` (created if needed) and return the directory.

    ``extra``: JSON-serialisable training summary stored under "training" in config.json and rendered in the
    model card; keys the card knows: train_files, val_files, n_train_windows, n_val_windows, hours, steps,
    final_train_loss, final_val_loss, optimizer, lr, batch_size, seed, world_size.
    ``optimizer`` (+ ``training_state`` JSON mapping, ``training_tensors``) makes the checkpoint resumable:
    see :func:`load_training_state`.
    """
    directory = Path(directory)
    model = getattr(model, "module", model)   # unwrap DistributedDataParallel
    config = config or model.config
    directory.mkdir(parents=True, exist_ok=True)
    weights_path = directory / WEIGHTS_NAME
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
              "model_config": json.dumps(config.to_dict(), sort_keys=True)}
    _atomic_write(weights_path, lambda tmp: save_file(state, str(tmp), metadata=header))
    sha = weights_sha256(weights_path)
    summary = _jsonable(dict(extra or {}))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": config.to_dict(),
        "n_parameters": count_parameters(model),
        "weights_file": WEIGHTS_NAME,
        "weights_sha256": sha,
        "training": summary,
        "software": software_versions(),
    }
    _atomic_write_text(directory / CONFIG_NAME, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    _atomic_write_text(directory / CARD_NAME, model_card(meta))
    if optimizer is not None:
        save_training_state(directory, optimizer, training_state or {}, training_tensors or {})
    return directory


def model_card(meta: Mapping[str, Any]) -> str:
    """Markdown summary of a checkpoint's config.json contents."""
    training = dict(meta.get("training") or {})
    cfg = meta["model"]
    lines = [
        "# BrainBERT-style model (bids-brainbert)",
        "",
        "Self-supervised masked-spectrogram transformer for intracranial EEG, trained with bids-brainbert.",
        "",
        "## Model",
        "",
        f"- layers: {cfg['n_layers']}, width: {cfg['d_model']}, heads: {cfg['n_heads']}, "
        f"feed-forward: {cfg['d_ff']}, input frequencies: {cfg['n_freqs']}",
        f"- parameters: {meta.get('n_parameters', 'unknown')}",
        f"- weights: `{meta.get('weights_file', WEIGHTS_NAME)}`, sha256 `{meta['weights_sha256']}`",
        "",
        "## Training",
        "",
    ]
    known = ("steps", "final_train_loss", "final_val_loss", "optimizer", "lr", "batch_size", "seed",
             "world_size", "precision", "n_train_windows", "n_val_windows", "hours")
    for key in known:
        if key in training:
            lines.append(f"- {key.replace('_', ' ')}: {training[key]}")
    for key, label in (("train_files", "Training data"), ("val_files", "Validation data")):
        files = training.get(key)
        if files:
            lines += ["", f"### {label} ({len(files)} files)", ""]
            lines += [f"- `{Path(str(f)).name}`" for f in files[:50]]
            if len(files) > 50:
                lines.append(f"- ... and {len(files) - 50} more (see config.json)")
    others = {k: v for k, v in training.items() if k not in known and k not in ("train_files", "val_files")}
    if others:
        lines += ["", "### Other settings", "", "```json", json.dumps(others, indent=2, sort_keys=True), "```"]
    lines += ["", "## Software", ""]
    lines += [f"- {name}: {version}" for name, version in sorted((meta.get("software") or {}).items())]
    return "\n".join(lines) + "\n"


def save_training_state(directory: str | os.PathLike, optimizer: torch.optim.Optimizer,
                        state: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
    """Optimizer state + caller's resume state: tensors in safetensors, the rest in JSON (no pickle)."""
    directory = Path(directory)
    opt_state = optimizer.state_dict()
    flat: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, param_state in opt_state["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                flat[f"optimizer.{param_id}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(param_id), {})[key] = _jsonable(value)
    for key, value in tensors.items():
        flat[f"extra.{key}"] = value.detach().to("cpu").contiguous()
    doc = {"optimizer": {"class": type(optimizer).__name__, "param_groups": _jsonable(opt_state["param_groups"]),
                         "scalars": scalars},
           "state": _jsonable(dict(state))}
    _atomic_write(directory / STATE_TENSORS_NAME, lambda tmp: save_file(flat, str(tmp)))
    _atomic_write_text(directory / STATE_JSON_NAME, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def load_training_state(directory: str | os.PathLike, optimizer: torch.optim.Optimizer | None = None
                        ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read what :func:`save_training_state` wrote; load the optimizer part into ``optimizer`` if given.

    Returns (JSON state, extra tensors).
    """
    directory = Path(directory)
    json_path, tensor_path = directory / STATE_JSON_NAME, directory / STATE_TENSORS_NAME
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
        flat = load_file(str(tensor_path))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{directory}: not a resumable checkpoint ({Path(exc.filename).name} missing)") \
            from None
    except (json.JSONDecodeError, SafetensorError, OSError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{directory}: unreadable training state: {str(exc).splitlines()[0][:200]}") \
            from None
    if not isinstance(doc, dict) or not isinstance(doc.get("optimizer", {}), dict) \
            or not isinstance(doc.get("state") or {}, dict):
        raise CheckpointError(f"{json_path}: not a training state (expected an object with optimizer and state)")
    extra = {k[len("extra."):]: v for k, v in flat.items() if k.startswith("extra.")}
    if optimizer is not None:
        try:
            _load_optimizer_state(optimizer, doc, flat, json_path, directory)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{json_path}: malformed optimizer state ({type(exc).__name__}: "
                                  f"{str(exc)[:120]})") from None
    return dict(doc.get("state") or {}), extra


def _load_optimizer_state(optimizer: torch.optim.Optimizer, doc: Mapping[str, Any],
                          flat: Mapping[str, torch.Tensor], json_path: Path, directory: Path) -> None:
    """Put the optimizer part of a training state into ``optimizer`` (the caller turns malformed JSON into a
    one-line error)."""
    opt_doc = doc.get("optimizer") or {}
    if opt_doc.get("class") != type(optimizer).__name__:
        raise CheckpointError(f"{json_path}: optimizer {opt_doc.get('class')!r} was saved, "
                              f"{type(optimizer).__name__!r} is configured")
    per_param: dict[int, dict[str, Any]] = {}
    for key, value in flat.items():
        if key.startswith("optimizer."):
            _, param_id, name = key.split(".", 2)
            per_param.setdefault(int(param_id), {})[name] = value
    for param_id, values in (opt_doc.get("scalars") or {}).items():
        per_param.setdefault(int(param_id), {}).update(values)
    groups = []
    for group in opt_doc["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    try:
        optimizer.load_state_dict({"state": per_param, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{directory}: optimizer state does not fit this model: {exc}") from None


# ------------------------------------------------------------------------------------------ our format: load
def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", verify: bool = True
                    ) -> tuple[BrainBertPretrainModel, ModelConfig, dict[str, Any]]:
    """Load a model: our checkpoint directory, its ``model.safetensors``, or a published ``.pth`` file.

    Returns (model in eval mode on ``device``, its ModelConfig, metadata: the parsed config.json, or for a
    published file ``{"format": "brainbert-published", "source": path, "model_cfg": {...}}``).
    With ``verify`` the weights' SHA-256 must match the one recorded in config.json.
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() in PUBLISHED_SUFFIXES:
        model, meta = _load_published(path)
        return model.to(device).eval(), model.config, meta
    if path.is_dir():
        weights_path, config_path = path / WEIGHTS_NAME, path / CONFIG_NAME
    else:
        weights_path, config_path = path, path.parent / CONFIG_NAME
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: no such checkpoint file")
    if config_path.is_file():
        meta, meta_source = _read_config_json(config_path), config_path
    else:
        meta, meta_source = _header_meta(weights_path), weights_path
    try:
        config = ModelConfig.from_dict(meta["model"])   # sizes bounded: nothing is allocated before this
    except (KeyError, TypeError, BidsBrainbertError) as exc:
        raise CheckpointError(f"{meta_source}: invalid model config ({exc})") from None
    model = BrainBertPretrainModel(config)
    _check_weights_file(weights_path, model)
    if verify and meta.get("weights_sha256") and weights_sha256(weights_path) != meta["weights_sha256"]:
        raise CheckpointError(f"{weights_path}: SHA-256 differs from the one in {config_path.name}: the "
                              f"weights file is corrupt or was replaced")
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights_path}: not a readable safetensors file ({exc})") from None
    _load_state_strict(model, state, weights_path)
    return model.to(device).eval(), config, meta


def _read_config_json(config_path: Path) -> dict[str, Any]:
    """config.json parsed and its envelope checked (format, format_version, model): one line naming the file."""
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{config_path}: not valid JSON ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{config_path}: must hold a JSON object, not {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{config_path}: not a {FORMAT} config (format={str(meta.get('format'))[:40]!r})")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{config_path}: format_version must be a positive integer, got "
                              f"{str(version)[:40]!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{config_path}: format version {version} is newer than "
                              f"this bids-brainbert ({FORMAT_VERSION}); upgrade bids-brainbert")
    if not isinstance(meta.get("model"), dict):
        raise CheckpointError(f"{config_path}: 'model' must be an object of model config fields")
    if "weights_sha256" in meta and not isinstance(meta["weights_sha256"], str):
        raise CheckpointError(f"{config_path}: weights_sha256 must be a hex string")
    return meta


def _header_meta(weights_path: Path) -> dict[str, Any]:
    """The model config a model.safetensors repeats in its header (used where no config.json lies beside it)."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            header = handle.metadata() or {}
        model = json.loads(header["model_config"])
    except KeyError:
        raise CheckpointError(f"{weights_path}: no config.json beside it and no model config in its header") \
            from None
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights_path}: not a readable safetensors file ({exc})") from None
    except (json.JSONDecodeError, RecursionError, TypeError) as exc:
        raise CheckpointError(f"{weights_path}: the model config in its header is not valid JSON ({exc})") \
            from None
    return {"format": FORMAT, "model": model}


def _check_weights_file(weights_path: Path, model: BrainBertPretrainModel) -> None:
    """The safetensors header (names, shapes) must describe exactly ``model``'s tensors, and the file must be no
    larger than they need, before a byte of tensor data is read: a hostile file of huge (or sparse) tensors is
    refused naming it, rather than allocated."""
    from safetensors import safe_open

    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    bound = 8 + 100_000_000 + 8 * sum(math.prod(shape) for shape in expected.values())   # float64 at most
    size = weights_path.stat().st_size
    if size > bound:
        raise CheckpointError(f"{weights_path}: {size} bytes, more than the {bound} its model config needs at "
                              f"most: not the weights of this model")
    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights_path}: not a readable safetensors file ({exc})") from None
    _check_names_and_shapes(shapes, expected, weights_path)


def _check_names_and_shapes(shapes: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]],
                            source: Path) -> None:
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0][:80]})")
        raise CheckpointError(f"{source}: weights do not match the model config: {'; '.join(parts)}")
    for key, shape in shapes.items():
        if shape != expected[key]:
            raise CheckpointError(f"{source}: tensor {key} has shape {shape}, the model config "
                                  f"expects {expected[key]}")


def check_input_width(config: ModelConfig, n_freqs: int, source: str | os.PathLike) -> None:
    """A model reads frames of exactly ``config.n_freqs`` frequencies: refuse one that does not fit the configured
    spectrogram before anything is written (otherwise every recording would fail inside the forward pass)."""
    if config.n_freqs != n_freqs:
        raise CheckpointError(f"{source}: wrong input shape: the model takes {config.n_freqs} frequencies per frame, "
                              f"the configured spectrogram has {n_freqs}")


def _load_state_strict(model: BrainBertPretrainModel, state: Mapping[str, torch.Tensor], source: Path) -> None:
    expected = model.state_dict()
    _check_names_and_shapes({k: tuple(v.shape) for k, v in state.items()},
                            {k: tuple(v.shape) for k, v in expected.items()}, source)
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            raise CheckpointError(f"{source}: tensor {key} has dtype {tensor.dtype}, expected floating point")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


# -------------------------------------------------------------------------------------- the published format
def _torch_load_published(path: Path) -> Any:
    """torch.load with weights_only; an OmegaConf model_cfg comes back as stand-ins (see :mod:`.omegaconf_plain`).

    Zip-format files are memory-mapped, so a storage of hostile size is not read in before the shapes are
    checked against a bounded model config."""
    mmap = zipfile.is_zipfile(path)

    def load() -> Any:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)

    try:
        return load()
    except pickle.UnpicklingError as first_error:
        try:
            needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
        except Exception:  # noqa: BLE001 - legacy (non-zip) files cannot be inspected: report the first error
            raise CheckpointError(f"{path}: cannot be loaded safely ({str(first_error).splitlines()[0]})") \
                from None
        foreign = sorted(needed - set(omegaconf_plain.STAND_INS))
        if foreign:
            raise CheckpointError(f"{path}: refusing to unpickle objects other than tensors and configuration "
                                  f"({', '.join(foreign[:5])})")
        if not needed:
            raise CheckpointError(f"{path}: cannot be loaded safely ({str(first_error).splitlines()[0]})") \
                from None
        with torch.serialization.safe_globals(omegaconf_plain.safe_globals_for(needed)):
            try:
                return load()
            except pickle.UnpicklingError as exc:
                raise CheckpointError(f"{path}: cannot be loaded safely ({str(exc).splitlines()[0]})") from None


def _plain_model_cfg(cfg: Any, path: Path) -> dict[str, Any]:
    if cfg is None:
        return {}
    try:
        cfg = omegaconf_plain.plain_config(cfg)
    except omegaconf_plain.NotPlainData as exc:
        raise CheckpointError(f"{path}: model_cfg is not plain configuration data ({exc})") from None
    if isinstance(cfg, Mapping):
        return {str(k): v for k, v in cfg.items()}
    raise CheckpointError(f"{path}: model_cfg is a {type(cfg).__name__}, expected a mapping")


def published_model_config(model_cfg: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor],
                           source: str | os.PathLike = "checkpoint") -> ModelConfig:
    """Our ModelConfig for a published (model_cfg, state_dict), checking one against the other.

    The published keys are hidden_dim, nhead, layer_dim_feedforward, layer_activation, encoder_num_layers and
    input_dim; missing ones are read off the tensor shapes (the head count, which shapes cannot tell, defaults
    to 12 as in every released size).
    """
    try:
        d_model, n_freqs = state_dict["input_encoding.in_proj.weight"].shape
        d_ff = state_dict["transformer.layers.0.linear1.weight"].shape[0]
    except (KeyError, ValueError, IndexError):
        raise CheckpointError(f"{source}: not a BrainBERT state dict (no input_encoding.in_proj.weight or "
                              f"transformer.layers.0.linear1.weight of the expected rank)") from None
    layer_ids = set()
    for key in state_dict:
        if key.startswith("transformer.layers."):
            index = key.split(".")[2]
            if not index.isdigit() or len(index) > 6:
                raise CheckpointError(f"{source}: unexpected tensor {key[:80]} for a BrainBERT model")
            layer_ids.add(int(index))
    n_layers = max(layer_ids) + 1
    inferred = {"hidden_dim": int(d_model), "input_dim": int(n_freqs), "layer_dim_feedforward": int(d_ff),
                "encoder_num_layers": int(n_layers)}

    def integer(key: str, default: int) -> int:
        value = model_cfg.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
            raise CheckpointError(f"{source}: model_cfg {key} must be a positive integer, got {str(value)[:40]!r}")
        return int(value)

    for key, value in inferred.items():
        if key in model_cfg and integer(key, value) != value:
            raise CheckpointError(f"{source}: model_cfg says {key}={model_cfg[key]} but the weights have {value}")
    activation = model_cfg.get("layer_activation", "gelu")
    try:
        return ModelConfig(n_freqs=int(n_freqs), d_model=int(d_model), n_layers=int(n_layers),
                           n_heads=integer("nhead", 12), d_ff=int(d_ff), dropout=0.1,
                           activation=activation if isinstance(activation, str) else repr(activation)[:40])
    except BidsBrainbertError as exc:
        raise CheckpointError(f"{source}: unusable model_cfg ({exc})") from None


_PREFIX_MAP = (
    ("input_encoding.in_proj.", "encoder.input_proj."),
    ("input_encoding.layer_norm.", "encoder.input_norm."),
    ("transformer.layers.", "encoder.layers."),
    ("spec_prediction_head.hidden_layer.", "head.dense."),
    ("spec_prediction_head.layer_norm.", "head.norm."),
    ("spec_prediction_head.output.", "head.out."),
)
_PUBLISHED_POSITIONS = "input_encoding.positional_encoding.pe"


def published_state_dict_to_ours(state_dict: Mapping[str, torch.Tensor], config: ModelConfig,
                                 source: str | os.PathLike = "checkpoint") -> dict[str, torch.Tensor]:
    """Rename the published module's tensors onto :class:`BrainBertPretrainModel`'s (shapes unchanged).

    The published positional table (a saved buffer) is checked against ours, which is computed, not loaded
    (to 2e-3: float32 rounding of the phase reaches a few 1e-4 near position 5000).
    """
    ours: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in state_dict.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key == _PUBLISHED_POSITIONS:
            if tensor.dim() < 2 or not tensor.is_floating_point():
                raise CheckpointError(f"{source}: its positional table has shape {tuple(tensor.shape)}, dtype "
                                      f"{tensor.dtype}: not a table of positions")
            table = tensor.reshape(-1, tensor.shape[-1])
            n = min(table.shape[0], config.max_frames)
            if table.shape[-1] != config.d_model or not torch.allclose(
                    table[:n].float(), sinusoidal_positions(n, config.d_model), atol=2e-3):
                raise CheckpointError(f"{source}: its positional table differs from the sinusoidal one")
            continue
        for old, new in _PREFIX_MAP:
            if key.startswith(old):
                ours[new + key[len(old):]] = tensor
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{source}: unexpected tensors for a BrainBERT model, e.g. {unknown[0]}")
    return ours


def _load_published(path: Path) -> tuple[BrainBertPretrainModel, dict[str, Any]]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        blob = _torch_load_published(path)
    except CheckpointError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({first})") from None
    if isinstance(blob, Mapping) and "model" in blob:
        state_dict, model_cfg = blob["model"], _plain_model_cfg(blob.get("model_cfg"), path)
    elif isinstance(blob, Mapping) and all(isinstance(v, torch.Tensor) for v in blob.values()):
        state_dict, model_cfg = blob, {}
    else:
        raise CheckpointError(f"{path}: expected a dict with a 'model' state dict (the published layout)")
    if not isinstance(state_dict, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                      for k, v in state_dict.items()):
        raise CheckpointError(f"{path}: its 'model' entry is not a state dict of tensors")
    state_dict = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state_dict.items()}
    config = published_model_config(model_cfg, state_dict, path)
    model = BrainBertPretrainModel(config)
    _load_state_strict(model, published_state_dict_to_ours(state_dict, config, path), path)
    meta = {"format": "brainbert-published", "source": str(path), "model_cfg": _jsonable(model_cfg),
            "model": config.to_dict(), "weights_sha256": weights_sha256(path)}
    return model, meta


def load_published_checkpoint(path: str | os.PathLike) -> BrainBertPretrainModel:
    """The published BrainBERT checkpoint (e.g. ``stft_large_pretrained.pth``) as our pretraining model.

    The result is in eval mode on the CPU and gives the published model's outputs (encoder and head).
    Raises :class:`CheckpointError` naming the file for corrupt, foreign, unsafe or wrongly shaped files.
    """
    model, _ = _load_published(Path(path))
    return model.eval()


__all__ = [
    "CheckpointError", "EXIT_CHECKPOINT", "check_input_width", "load_checkpoint", "load_published_checkpoint",
    "load_training_state",
    "model_card", "published_model_config", "published_state_dict_to_ours", "save_checkpoint",
    "save_training_state", "software_versions", "weights_sha256",
]
