"""String registry from model names to Flax modules and their metadata (timm-style)."""

from __future__ import annotations

import dataclasses
import difflib
import functools
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)  # maps [0, 1] to [-1, 1]
INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """What a user, a config or the data pipeline needs to know about a registered model.

  `input_size` is the paper's training/eval resolution; `min_input_size` the smallest
  square input the network accepts (every downsampling leaves at least 1 pixel);
  `mean`/`std` the per-channel normalisation of [0, 1] RGB inputs; `crop_fraction` the
  centre-crop fraction of the paper's single-crop evaluation.
  """
  name: str
  family: str
  constructor: Callable[..., nn.Module]
  input_size: int = 224
  min_input_size: int = 32
  mean: tuple[float, ...] = IMAGENET_MEAN
  std: tuple[float, ...] = IMAGENET_STD
  crop_fraction: float = 0.875
  interpolation: str = "bilinear"
  paper: str = ""


_REGISTRY: dict[str, ModelSpec] = {}


def register(name: str, constructor: Callable[..., nn.Module], *, family: str,
             **metadata: Any) -> ModelSpec:
  """Registers `constructor(num_classes=..., dtype=..., **overrides) -> nn.Module`."""
  if name in _REGISTRY:
    raise ValueError(f"model {name!r} is registered twice")
  spec = ModelSpec(name=name, family=family, constructor=constructor, **metadata)
  _REGISTRY[name] = spec
  return spec


def names() -> list[str]:
  """Sorted names of all registered models."""
  return sorted(_REGISTRY)


def _unknown(name: str) -> ValueError:
  close = difflib.get_close_matches(name, names(), n=3, cutoff=0.5)
  hint = f"did you mean {', '.join(close)}?" if close else "see cnn_jax.models.names()"
  return ValueError(f"unknown model {name!r}: {hint}")


def spec(name: str) -> ModelSpec:
  """The registry record of `name` (input size, family, normalisation, ...)."""
  if name not in _REGISTRY:
    raise _unknown(name)
  return _REGISTRY[name]


def _module_fields(constructor) -> set[str]:
  cls = constructor
  while isinstance(cls, functools.partial):
    cls = cls.func
  if dataclasses.is_dataclass(cls):
    return {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
  return set()


def overridable_fields(name: str) -> list[str]:
  """The module fields `create(name, **overrides)` accepts."""
  return sorted(_module_fields(spec(name).constructor) - {"num_classes", "dtype"})


def create(name: str, *, num_classes: int = 1000, dtype: Any = jnp.float32,
           **overrides: Any) -> nn.Module:
  """Builds the registered model `name`; `overrides` replace fields of its module.

  Parameters are always float32; `dtype` is the compute dtype (bfloat16 on accelerators).
  """
  model_spec = spec(name)
  fields = _module_fields(model_spec.constructor)
  unknown = sorted(set(overrides) - fields) if fields else []
  if unknown:
    close = [c for u in unknown
             for c in difflib.get_close_matches(u, overridable_fields(name), n=1)]
    hint = f' (Did you mean "{", ".join(close)}"?)' if close else ""
    raise ValueError(
        f"model {name!r} has no field(s) {', '.join(unknown)}{hint}; overridable fields: "
        f"{', '.join(overridable_fields(name))}")
  return model_spec.constructor(num_classes=num_classes, dtype=dtype, **overrides)
