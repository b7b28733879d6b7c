"""Read the OmegaConf ``model_cfg`` of a published BrainBERT checkpoint as plain data, without omegaconf.

The published ``.pth`` pickles its model config as an ``omegaconf.DictConfig``. Allowing omegaconf's own classes
in the unpickler would hand a hostile file every callable of that package (``OmegaConf.save`` writes any file).
Instead each global name that such a pickle legitimately references is bound to an inert stand-in defined here:
the unpickler builds stand-ins, which keep only the config's content (keys and primitive values) and run no code
of the file's choosing, and :func:`plain_config` turns them into dicts and lists. Any other global is refused by
torch's weights-only unpickler. omegaconf itself is never imported.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 64           # a model config is a few levels deep; deeper nesting is hostile, not a config
_PRIMITIVES = (str, int, float, bool, type(None))


class _Inert:
    """Accepts whatever the pickle passes (construction, state) and keeps nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _Metadata(_Inert):
    """omegaconf.base.Metadata / ContainerMetadata: types and flags, not content."""


class _TypeMarker(_Inert):
    """A type referenced by the metadata (``typing.Any``, ``dict``, ``int``, ...)."""


class _DictConfig:
    content: Any = None

    def __setstate__(self, state: Any) -> None:
        self.content = state.get("_content") if isinstance(state, dict) else None


class _ListConfig(_DictConfig):
    pass


class _ValueNode:
    value: Any = None

    def __setstate__(self, state: Any) -> None:
        self.value = state.get("_val") if isinstance(state, dict) else None


# The exact global names a DictConfig pickle of OmegaConf 2.x references (checked with omegaconf 2.1 - 2.4).
STAND_INS: dict[str, type] = {
    "omegaconf.dictconfig.DictConfig": _DictConfig,
    "omegaconf.listconfig.ListConfig": _ListConfig,
    "omegaconf.nodes.AnyNode": _ValueNode,
    "omegaconf.nodes.StringNode": _ValueNode,
    "omegaconf.nodes.IntegerNode": _ValueNode,
    "omegaconf.nodes.FloatNode": _ValueNode,
    "omegaconf.nodes.BooleanNode": _ValueNode,
    "omegaconf.base.Metadata": _Metadata,
    "omegaconf.base.ContainerMetadata": _Metadata,
    "typing.Any": _TypeMarker,
    "builtins.dict": _TypeMarker,
    "builtins.list": _TypeMarker,
    "builtins.int": _TypeMarker,
    "builtins.float": _TypeMarker,
    "builtins.str": _TypeMarker,
    "builtins.bool": _TypeMarker,
    "collections.defaultdict": _TypeMarker,
}


def safe_globals_for(names: set[str] | list[str]) -> list[tuple[type, str]]:
    """(stand-in, name) pairs for torch.serialization.safe_globals; only names of :data:`STAND_INS`."""
    return [(STAND_INS[name], name) for name in sorted(names)]


def is_stand_in(value: Any) -> bool:
    return isinstance(value, (_Inert, _DictConfig, _ValueNode))


class NotPlainData(ValueError):
    """The unpickled config holds something other than nested mappings, lists and primitive values."""


def plain_config(value: Any, depth: int = 0) -> Any:
    """Stand-ins (and plain containers holding them) → dicts, lists and primitives; NotPlainData otherwise."""
    if depth > MAX_DEPTH:
        raise NotPlainData(f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, _ValueNode):
        value = value.value
    elif isinstance(value, _DictConfig):
        value = value.content
        if value is None or isinstance(value, str):   # OmegaConf's None / missing ("???") / interpolated container
            return value
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, _PRIMITIVES):
                raise NotPlainData(f"a key of type {type(key).__name__}")
            out[key] = plain_config(item, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [plain_config(item, depth + 1) for item in value]
    raise NotPlainData(f"a value of type {type(value).__name__}")
