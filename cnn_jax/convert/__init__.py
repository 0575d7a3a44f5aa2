"""Weight import from torchvision and Keras applications into registry models.

  model, variables = convert.from_torchvision("resnet50", state_dict)
  model, variables = convert.from_keras("resnet50", keras_model)
  logits = model.apply(variables, x_nhwc, train=False)   # == the source's logits

`convert(source, name, weights) -> Converted` also says how the converted model expects
its input normalised (`mean`/`std`). Model code never imports this package (the models
know no weight source's conventions); each family's mapping lives in the file named after
the family, registered on import.
`python -m cnn_jax.convert` writes an orbax checkpoint that `config.init_from` loads.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Mapping

from cnn_jax.convert.common import (SOURCE_BUILDERS, SOURCES, Converted, SourceWeights,
                                    converter, supported)

_FAMILIES = ("resnet", "classic", "inception", "mobilenet", "densenet", "efficientnet")
for _family in _FAMILIES:
  try:
    importlib.import_module(f"cnn_jax.convert.{_family}")
  except ModuleNotFoundError as e:  # a family whose converter is not written yet
    if e.name != f"cnn_jax.convert.{_family}":
      raise


def torch_weights(state_dict: Mapping[str, Any]) -> SourceWeights:
  """A torchvision state dict (numpy arrays or torch tensors) as SourceWeights."""
  return SourceWeights(state_dict, "torchvision",
                       ignore=lambda k: k.endswith("num_batches_tracked"))


def keras_weights(keras_model) -> SourceWeights:
  """Every variable of a built Keras model, keyed by its path ('conv1_conv/kernel')."""
  arrays = {}
  for v in keras_model.weights:
    if v.path in arrays:
      raise ValueError(f"Keras variable path {v.path!r} is not unique")
    arrays[v.path] = v
  return SourceWeights(arrays, "keras", ignore=lambda k: k.endswith("/count"),
                       model=keras_model)


def convert(source: str, name: str, weights: Any) -> Converted:
  """Converts `weights` (a state dict for torchvision, a built Keras model for keras)."""
  fn = converter(source, name)
  source_weights = torch_weights(weights) if source == "torchvision" else keras_weights(weights)
  result = fn(name, source_weights)
  source_weights.check_all_used()
  return result


def from_torchvision(name: str, state_dict: Mapping[str, Any]):
  """(model, variables) of registry model `name` holding torchvision's `state_dict`."""
  result = convert("torchvision", name, state_dict)
  return result.model(), result.variables


def from_keras(name: str, keras_model):
  """(model, variables) of registry model `name` holding a built Keras application."""
  result = convert("keras", name, keras_model)
  return result.model(), result.variables


# --- readers for the files users have ---------------------------------------------------

def load_state_dict(path: str) -> dict[str, Any]:
  """A PyTorch state dict from `.pth`/`.pt`/`.bin` (its pickle's imports checked first by
  `safe_pickle`, then torch.load with weights_only=True: no pickled code runs) or
  `.safetensors` (no torch needed)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"weights file {path} does not exist")
  if path.endswith(".safetensors"):
    from safetensors.numpy import load_file
    try:
      return dict(load_file(path))
    except Exception as e:  # noqa: BLE001 — SafetensorError: a truncated or foreign file
      raise ValueError(f"{path} is not a readable .safetensors file ({type(e).__name__}: "
                       f"{' '.join(str(e).split())}); download or save it again") from e
  from cnn_jax.convert.safe_pickle import check_weights_pickle
  check_weights_pickle(path)  # refuses pickled code with or without torch installed
  from cnn_jax.convert.torch_import import block_triton
  block_triton()
  try:
    import torch
  except ImportError as e:
    raise ImportError(f"reading {path} needs torch (pip install torch); or save the state "
                      "dict as .safetensors, which needs no torch") from e
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # weights_only refuses pickled code: say so in one line
    raise ValueError(f"{path} is not a plain PyTorch state dict ({type(e).__name__}: "
                     f"{str(e).splitlines()[0]})") from e
  for key in ("state_dict", "model", "model_state_dict"):  # common training wrappers
    if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
      obj = obj[key]
  if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
    raise ValueError(f"{path} does not hold a state dict of tensors")
  return {k.removeprefix("module."): v for k, v in obj.items()}


def keras_module():
  """Keras 3 on its JAX backend (set before the first import of keras)."""
  os.environ.setdefault("KERAS_BACKEND", "jax")
  import keras
  if keras.backend.backend() != "jax":
    raise RuntimeError(f"Keras runs on {keras.backend.backend()!r}; set KERAS_BACKEND=jax "
                       "before keras is first imported")
  return keras


def load_keras(name: str, path: str, num_classes: int = 1000, input_size: int | None = None):
  """A Keras application for registry `name` with weights from `.keras` or `.weights.h5`.

  A `.weights.h5` file holds no architecture: it is rebuilt as
  `keras.applications.<Builder>(weights=None, classes=num_classes)` with logits out
  (classifier_activation=None; the weights are the same) and, if given, a square
  `input_size`."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"weights file {path} does not exist")
  keras = keras_module()
  if not path.endswith((".keras", ".h5")):
    raise ValueError(f"{path}: Keras weights must be .keras or .weights.h5")

  def unreadable(e: Exception) -> ValueError:  # h5py's OSError, zipfile's BadZipFile, ...
    return ValueError(f"{path} cannot be read as Keras weights ({type(e).__name__}: "
                      f"{' '.join(str(e).split())[:200]}); is it whole, and saved for "
                      f"the model you named?")

  if path.endswith(".keras"):
    try:
      return keras.saving.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001
      raise unreadable(e) from e
  builder = SOURCE_BUILDERS["keras"].get(name)
  if builder is None:
    converter("keras", name)  # raises the unsupported-model error
  kwargs = {"input_shape": (input_size, input_size, 3)} if input_size else {}
  model = getattr(keras.applications, builder)(weights=None, classes=num_classes,
                                               classifier_activation=None, **kwargs)
  try:
    model.load_weights(path)
  except Exception as e:  # noqa: BLE001
    raise unreadable(e) from e
  return model


__all__ = ["Converted", "SOURCES", "SOURCE_BUILDERS", "convert", "converter", "from_keras",
           "from_torchvision", "keras_module", "load_keras", "load_state_dict", "supported"]
