"""What every converter shares: the result record, source-weight bookkeeping, and the
checked assignment of arrays into a registry model's variable tree.

A converter is a function `(name, source) -> Converted` registered for one source
('torchvision' or 'keras') and one or more registry names. It reads source arrays through
`SourceWeights.take(key)` (so left-over source tensors are an error: a layer we did not
map is a layer we would silently drop) and writes ours through `Target.put(path, value)`
(so a missing, doubled or mis-shaped parameter is an error naming the path).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import models

SOURCES = ("torchvision", "keras")


@dataclasses.dataclass
class Converted:
  """A source model expressed as a registry model plus the overrides its conventions need.

  `mean`/`std` say how the converted model expects its input: `(rgb01 - mean) / std`
  per channel, where `rgb01` is an RGB image scaled to [0, 1]. `source_bgr`: the source
  model took BGR (Keras 'caffe' mode); ours takes RGB (its first conv is flipped), so the
  source must be fed `x[..., ::-1]` to compare.
  """
  name: str
  source: str
  overrides: dict[str, Any]
  variables: dict[str, Any]
  num_classes: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  source_bgr: bool = False

  def model(self, dtype=jnp.float32):
    return models.create(self.name, num_classes=self.num_classes, dtype=dtype,
                         **self.overrides)

  def metadata(self) -> dict[str, Any]:
    """JSON-able description written beside a converted checkpoint."""
    return {"model": self.name, "source": self.source, "num_classes": self.num_classes,
            "overrides": _jsonable(self.overrides), "mean": list(self.mean),
            "std": list(self.std)}


def _jsonable(overrides: Mapping[str, Any]) -> dict[str, Any]:
  out = {}
  for k, v in overrides.items():
    if not isinstance(v, (bool, int, float, str, list, tuple, type(None))):
      raise TypeError(f"override {k}={v!r} is not JSON-able; converters must use plain "
                      "values (strings, numbers, tuples) for overrides")
    out[k] = list(v) if isinstance(v, tuple) else v
  return out


# --- registration ----------------------------------------------------------------------

_CONVERTERS: dict[str, dict[str, Callable[[str, Any], Converted]]] = {s: {} for s in SOURCES}
# Our registry name -> the source's builder: torchvision.models.<builder>(),
# keras.applications.<builder>().
SOURCE_BUILDERS: dict[str, dict[str, str]] = {s: {} for s in SOURCES}


def register(source: str, builders: Mapping[str, str]):
  """Decorator: `fn(name, source_weights) -> Converted` converts the registry names in
  `builders` (ours -> the source's builder name) from `source`."""
  if source not in SOURCES:
    raise ValueError(f"unknown source {source!r}; choose one of {SOURCES}")

  def wrap(fn):
    for name, builder in builders.items():
      models.spec(name)  # an unknown registry name fails at import, not at conversion
      if name in _CONVERTERS[source]:
        raise ValueError(f"{name!r} has two {source} converters")
      _CONVERTERS[source][name] = fn
      SOURCE_BUILDERS[source][name] = builder
    return fn
  return wrap


def converter(source: str, name: str) -> Callable[[str, Any], Converted]:
  if source not in SOURCES:
    raise ValueError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
  table = _CONVERTERS[source]
  if name not in table:
    models.spec(name)  # unknown registry names get the registry's closest-name error
    raise ValueError(f"no {source} converter for {name!r}; {source} models: "
                     f"{', '.join(sorted(table))}")
  return table[name]


def supported(source: str) -> list[str]:
  return sorted(_CONVERTERS[source])


# --- source side -----------------------------------------------------------------------

def to_numpy(value: Any) -> np.ndarray:
  """numpy array from a numpy array, a torch tensor (no torch import needed) or a Keras
  variable."""
  if hasattr(value, "detach"):  # torch.Tensor
    value = value.detach().cpu()
    if str(value.dtype) == "torch.bfloat16":
      value = value.float()
    return value.numpy()
  if hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # keras / tf variable
    return np.asarray(value.numpy())
  return np.asarray(value)


class SourceWeights:
  """A flat name -> array mapping that records which entries a converter consumed."""

  def __init__(self, arrays: Mapping[str, Any], source: str,
               ignore: Callable[[str], bool] = lambda key: False, model: Any = None):
    self.source = source
    self.model = model  # the Keras model itself (its layer configs), None for state dicts
    self._arrays = dict(arrays)
    self._unused = {k for k in self._arrays if not ignore(k)}

  def __contains__(self, key: str) -> bool:
    return key in self._arrays

  def keys(self) -> list[str]:
    return list(self._arrays)

  def take(self, key: str) -> np.ndarray:
    if key not in self._arrays:
      raise KeyError(f"{self.source} weights have no {key!r}; is this the model you named? "
                     f"(e.g. {', '.join(list(self._arrays)[:3])}, ...)")
    self._unused.discard(key)
    return to_numpy(self._arrays[key]).astype(np.float32)

  def check_all_used(self) -> None:
    if self._unused:
      left = sorted(self._unused)
      raise ValueError(f"{len(left)} {self.source} weights were not converted (first: "
                       f"{', '.join(left[:5])}); the source model has layers ours lacks")


# --- target side -----------------------------------------------------------------------

def abstract_variables(model, image_size: int, channels: int = 3) -> dict[str, Any]:
  """Shapes of `model`'s variables (no compute)."""
  init = functools.partial(model.init, train=False)
  x = jax.ShapeDtypeStruct((1, image_size, image_size, channels), jnp.float32)
  return jax.eval_shape(init, jax.random.key(0), x)


class Target:
  """Fills a registry model's variable tree path by path, checking every shape.

  Paths are '/'-joined: 'params/stage1_block1/conv1/conv/kernel',
  'batch_stats/stem_conv/norm/bn/mean'.
  """

  def __init__(self, model, image_size: int):
    abstract = abstract_variables(model, image_size)
    self._shapes = {"/".join(str(getattr(k, "key", k)) for k in path): leaf.shape
                    for path, leaf in jax.tree_util.tree_leaves_with_path(abstract)}
    self._values: dict[str, np.ndarray] = {}

  def paths(self, prefix: str = "") -> list[str]:
    """Our variable paths (sorted, as JAX flattens dicts) starting with `prefix`."""
    return [p for p in self._shapes if p.startswith(prefix)]

  def put(self, path: str, value: np.ndarray) -> None:
    if path not in self._shapes:
      raise KeyError(f"the model has no variable {path!r}")
    if path in self._values:
      raise ValueError(f"variable {path!r} assigned twice")
    value = np.asarray(value, np.float32)
    if value.shape != tuple(self._shapes[path]):
      raise ValueError(f"{path}: ours is {tuple(self._shapes[path])}, source gives "
                       f"{value.shape}")
    self._values[path] = value

  def variables(self) -> dict[str, Any]:
    missing = [p for p in self._shapes if p not in self._values]
    if missing:
      raise ValueError(f"{len(missing)} variables got no source weights (first: "
                       f"{', '.join(missing[:5])})")
    out: dict[str, Any] = {}
    for path, value in self._values.items():
      node = out
      *parents, leaf = path.split("/")
      for p in parents:
        node = node.setdefault(p, {})
      node[leaf] = jax.device_put(value)  # jnp.asarray would compile a copy per shape
    return out


# --- layout changes --------------------------------------------------------------------

def torch_conv_kernel(w: np.ndarray) -> np.ndarray:
  """PyTorch OIHW (O, I/groups, kh, kw) -> our HWIO (kh, kw, I/groups, O)."""
  return np.transpose(w, (2, 3, 1, 0))


def torch_dense_kernel(w: np.ndarray) -> np.ndarray:
  """PyTorch Linear (out, in) -> Flax Dense (in, out)."""
  return np.transpose(w, (1, 0))


def keras_depthwise_kernel(w: np.ndarray) -> np.ndarray:
  """Keras DepthwiseConv2D (kh, kw, C, multiplier) -> our grouped HWIO (kh, kw, 1, C*m)."""
  kh, kw, c, m = w.shape
  return w.reshape(kh, kw, 1, c * m)


def flatten_keras_fc(w: np.ndarray, h: int, w_: int, c: int) -> np.ndarray:
  """A Dense kernel after Keras's NHWC Flatten -> the (h, w, c, out) conv kernel of an
  FC layer run as a convolution (the row order of NHWC flatten is already h, w, c)."""
  return w.reshape(h, w_, c, w.shape[-1])


def flatten_torch_fc(w: np.ndarray, h: int, w_: int, c: int) -> np.ndarray:
  """A Linear weight after PyTorch's NCHW flatten (out, c*h*w) -> conv kernel (h, w, c, out)."""
  return np.transpose(w.reshape(w.shape[0], c, h, w_), (2, 3, 1, 0))


# Keras 'caffe' preprocessing as (rgb01 - mean) / std, once the first conv takes RGB.
CAFFE_MEAN = (123.68 / 255, 116.779 / 255, 103.939 / 255)
CAFFE_STD = (1 / 255, 1 / 255, 1 / 255)


# --- writing our blocks, shared by every family's converter ---------------------------

def bgr_to_rgb(kernel: np.ndarray) -> np.ndarray:
  """An HWIO first-layer kernel trained on BGR inputs, rewritten to take RGB."""
  return kernel[:, :, ::-1, :]


def put_conv(target: Target, prefix: str, kernel: np.ndarray,
             bias: np.ndarray | None = None) -> None:
  """HWIO `kernel` (and `bias`) into the `Conv` at `prefix` ('stage1_block1/conv1/conv')."""
  target.put(f"params/{prefix}/kernel", kernel)
  if bias is not None:
    target.put(f"params/{prefix}/bias", bias)


def put_norm(target: Target, prefix: str, scale, bias, mean, var) -> None:
  """BatchNorm statistics into our `BatchNorm` at `prefix` ('conv1/norm'); `scale=None`
  for a BN without a learned scale (Keras's scale=False)."""
  if scale is not None:
    target.put(f"params/{prefix}/bn/scale", scale)
  target.put(f"params/{prefix}/bn/bias", bias)
  target.put(f"batch_stats/{prefix}/bn/mean", mean)
  target.put(f"batch_stats/{prefix}/bn/var", var)


def put_torch_norm(target: Target, prefix: str, src: SourceWeights, key: str) -> None:
  """torch BatchNorm2d `key` ('bn1') into our BatchNorm at `prefix`."""
  put_norm(target, prefix, src.take(f"{key}.weight"), src.take(f"{key}.bias"),
           src.take(f"{key}.running_mean"), src.take(f"{key}.running_var"))


def put_keras_norm(target: Target, prefix: str, src: SourceWeights, key: str) -> None:
  """Keras BatchNormalization `key` ('conv1_bn') into our BatchNorm at `prefix`."""
  put_norm(target, prefix, src.take(f"{key}/gamma"), src.take(f"{key}/beta"),
           src.take(f"{key}/moving_mean"), src.take(f"{key}/moving_variance"))


def mismatch(source: str, name: str, theirs: str, ours: str) -> ValueError:
  return ValueError(f"{source} weights do not fit {name!r}: the weights have {theirs}, "
                    f"{name} has {ours}; convert them into the registry model they came from")
