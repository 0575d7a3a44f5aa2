"""Shared checks for the weight-conversion tests: random weights *and* random BatchNorm
statistics in the source model, the same NHWC batch into both, max |difference| of the
logits, and proof that the source's logits depend on the input at all. torchvision tests
skip when torch is absent; Keras runs on its JAX backend.

Cost on 2 CPU cores is compilation, not arithmetic (a network has dozens to hundreds of
distinct tensor shapes). So both JAX forward passes are jitted whole with XLA's backend
optimisation off (FAST_COMPILE: a third of the compile time, the same arithmetic), and
Keras models draw their initial weights from numpy instead of compiling one jax.random
program per variable shape."""

from __future__ import annotations

import contextlib
import os
import sys

import jax
import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")

ATOL = 1e-4  # the bound conversions are held to: max |logit difference| in float32
# A wrong mapping moves logits by about their own size: keep that far above the bound.
MIN_LOGIT_SCALE = 100 * ATOL
# The batch's images must give logits that differ by more than this fraction of the
# logit scale, so that a source (or a conversion) that ignores its input cannot match.
MIN_INPUT_EFFECT = 0.01
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def names(all_names, slow=()) -> list:
  """pytest parameters: `all_names`, those in `slow` marked slow (> ~20 s on 2 cores)."""
  return [pytest.param(n, marks=pytest.mark.slow) if n in slow else n for n in all_names]


def input_batch(size: int, batch: int = 2, seed: int = 0) -> np.ndarray:
  """Inputs of standard scale (already normalised), NHWC float32."""
  return np.random.default_rng(seed).standard_normal((batch, size, size, 3)).astype(np.float32)


def _compiled(fn, *args) -> np.ndarray:
  """fn(*args) as one jitted program, compiled with FAST_COMPILE."""
  return np.asarray(jax.jit(fn).lower(*args).compile(compiler_options=FAST_COMPILE)(*args))


def ours_logits(result, x: np.ndarray) -> np.ndarray:
  """Logits of our model converted into `result` (a cnn_jax.convert.Converted), in eval
  mode, as one jitted program (eager apply compiles op by op, ~6x slower)."""
  model = result.model()
  return _compiled(lambda v, x: model.apply(v, x, train=False), result.variables, x)


# --- torchvision -----------------------------------------------------------------------

def torchvision_model(builder: str, seed: int = 0, **kwargs):
  """torchvision.models.<builder>(weights=None) with randomised BN statistics, in eval mode."""
  torch = pytest.importorskip("torch")
  tv = pytest.importorskip("torchvision")
  torch.manual_seed(seed)
  model = getattr(tv.models, builder)(weights=None, **kwargs)
  gen = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
        m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
        m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
        if m.affine:
          m.weight.copy_(0.8 + 0.4 * torch.rand(m.weight.shape, generator=gen))
          m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
  return model.eval()


def he_scaled_torch(model, gain: float = 2.0):
  """Every conv's weights rescaled to std sqrt(gain / fan_in): He's (ReLU-preserving) by
  default. Under
  torch's default init (variance 1 / (3 fan_in)), or with the random BN statistics
  mismatching the activations, 20+ conv-BN-activation layers can shrink the input's trace
  in the logits to ~1e-7 of their scale, and a wrong stem would still "match" to 1e-4;
  assert_logits_match checks that the input is seen."""
  import torch
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, torch.nn.Conv2d):  # weight[0]: one output's (in / groups, kh, kw)
        m.weight.mul_((gain / m.weight[0].numel()) ** 0.5 / m.weight.std())
  return model


# Calibrated statistics of a small batch give some channels a near-zero variance, and
# dividing by it multiplies float32 rounding by up to 1/sqrt(eps); a floor of this
# fraction of the layer's mean variance keeps the comparison about the conversion.
VAR_FLOOR = 0.2


def calibrated_torch_bn(model, x_nhwc: np.ndarray, seed: int = 0):
  """BN running statistics set from one train-mode pass over `x_nhwc` (cumulative
  average), then perturbed (mean +- 0.1 std, variance x U[0.8, 1.2] + VAR_FLOOR x the
  layer's mean variance): random statistics
  that match the activations' scale, so BN neither erases the input (as statistics far
  from tiny activations do in deep nets like EfficientNet) nor is the identity."""
  import torch
  bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
  for m in bns:
    m.reset_running_stats()
    m.momentum = None
  model.train()
  with torch.no_grad():
    model(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))))
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in bns:
      std = m.running_var.sqrt()
      m.running_mean.add_(0.1 * std * torch.randn(std.shape, generator=gen))
      m.running_var.mul_(0.8 + 0.4 * torch.rand(std.shape, generator=gen))
      m.running_var.add_(VAR_FLOOR * m.running_var.mean())
  return model.eval()


def torch_logits(model, x_nhwc: np.ndarray) -> np.ndarray:
  import torch
  with torch.no_grad():
    out = model(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))))
  if isinstance(out, tuple):  # GoogLeNet / Inception v3 namedtuples in train mode
    out = out[0]
  return out.numpy()


# --- Keras -----------------------------------------------------------------------------

@contextlib.contextmanager
def numpy_keras_initialisers(seed: int = 0):
  """Keras's random initialisers draw from numpy (same distributions) while in the block:
  on the JAX backend each new variable shape otherwise compiles its own jax.random
  program, which dominates building a model on CPU. Where Keras's internals differ from
  what is patched here, the block runs with Keras's own initialisers (slower, as correct)."""
  try:
    from keras.src import backend
    random = backend.random
  except (ImportError, AttributeError):
    yield
    return
  rng = np.random.default_rng(seed)

  def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    return rng.uniform(minval, maxval, shape).astype(dtype or "float32")

  def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    return (mean + stddev * rng.standard_normal(shape)).astype(dtype or "float32")

  def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    z = rng.standard_normal(shape)  # redrawn beyond two standard deviations, as in Keras
    while (out := np.abs(z) > 2.0).any():
      z[out] = rng.standard_normal(int(out.sum()))
    return (mean + stddev * z).astype(dtype or "float32")

  saved = {}
  for fn in (uniform, normal, truncated_normal):
    if hasattr(random, fn.__name__):
      saved[fn.__name__] = getattr(random, fn.__name__)
      setattr(random, fn.__name__, fn)
  try:
    yield
  finally:
    for name, fn in saved.items():
      setattr(random, name, fn)


def keras_model(builder: str, seed: int = 0, **kwargs):
  """keras.applications.<builder>(weights=None) with randomised BN statistics."""
  from cnn_jax.convert import keras_module
  keras = keras_module()
  keras.utils.set_random_seed(seed)
  if "tensorflow" in sys.modules:
    # set_random_seed also sets TF's global seed; with it at 0, TF's own get_seed fails on
    # the tensor seeds of the input pipeline's per-epoch shuffle (in later tests of the
    # same process). Nothing here uses TF's random ops.
    sys.modules["tensorflow"].random.set_seed(None)
  kwargs.setdefault("classifier_activation", None)  # logits, not softmax
  with numpy_keras_initialisers(seed):
    model = getattr(keras.applications, builder)(weights=None, **kwargs)
  rng = np.random.default_rng(seed + 1)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      for v in layer.weights:
        kind = v.path.rsplit("/", 1)[-1]
        shape = tuple(v.shape)
        value = {"gamma": 0.8 + 0.4 * rng.random(shape),
                 "beta": 0.1 * rng.standard_normal(shape),
                 "moving_mean": 0.1 * rng.standard_normal(shape),
                 "moving_variance": 0.5 + rng.random(shape)}[kind]
        v.assign(value.astype(np.float32))
  return model


def he_scaled_keras(model, gain: float = 2.0):
  """As `he_scaled_torch`, for Keras's (Glorot-uniform) Conv2D and DepthwiseConv2D."""
  import keras
  for layer in model.layers:
    if isinstance(layer, keras.layers.DepthwiseConv2D):
      fan_in_dims = 2  # kernel (kh, kw, in, multiplier): each output sees kh * kw inputs
    elif isinstance(layer, keras.layers.Conv2D):
      fan_in_dims = 3  # kernel (kh, kw, in / groups, out)
    else:
      continue
    w = np.asarray(layer.kernel)
    layer.kernel.assign(w * (gain / np.prod(w.shape[:fan_in_dims])) ** 0.5 / w.std())
  return model


def calibrated_keras_bn(model, x_nhwc: np.ndarray, seed: int = 0):
  """As `calibrated_torch_bn`, for Keras: one (jitted) training-mode call with every BN's
  momentum at 0 (so the moving statistics become the batch's), momentum restored, then
  perturbed."""
  import keras
  bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
  momenta = [l.momentum for l in bns]
  for layer in bns:
    layer.momentum = 0.0
  import jax
  trainable = [v.value for v in model.trainable_variables]
  non_trainable = [v.value for v in model.non_trainable_variables]
  step = jax.jit(lambda t, n, x: model.stateless_call(t, n, x, training=True)[1])
  updated = step.lower(trainable, non_trainable, np.asarray(x_nhwc, np.float32)).compile(
      compiler_options=FAST_COMPILE)(trainable, non_trainable, np.asarray(x_nhwc, np.float32))
  for v, value in zip(model.non_trainable_variables, updated):
    v.assign(value)
  rng = np.random.default_rng(seed)
  for layer, momentum in zip(bns, momenta):
    layer.momentum = momentum
    var = np.asarray(layer.moving_variance)
    layer.moving_mean.assign(np.asarray(layer.moving_mean)
                             + 0.1 * np.sqrt(var) * rng.standard_normal(var.shape))
    var = var * (0.8 + 0.4 * rng.random(var.shape))
    layer.moving_variance.assign(var + VAR_FLOOR * var.mean())
  return model


def keras_logits(model, x_nhwc) -> np.ndarray:
  """Logits (keras_model builds with classifier_activation=None), as one jitted program:
  eager Keras-on-JAX compiles op by op, ~4x slower on a fresh model."""
  trainable = [v.value for v in model.trainable_variables]
  non_trainable = [v.value for v in model.non_trainable_variables]
  return _compiled(lambda t, n, x: model.stateless_call(t, n, x, training=False)[0],
                   trainable, non_trainable, np.asarray(x_nhwc, np.float32))


# --- the check -------------------------------------------------------------------------

def assert_logits_match(ours, theirs, atol: float = ATOL, rtol: float | None = None) -> float:
  """max |ours - theirs| <= atol (and <= rtol * logit scale if given), where the source's
  logits are far from zero (scale > MIN_LOGIT_SCALE) and depend on the input: the batch
  (>= 2 images) gives rows differing by > MIN_INPUT_EFFECT of the logit scale. Returns
  the max |difference|."""
  ours, theirs = np.asarray(ours, np.float32), np.asarray(theirs, np.float32)
  assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
  assert theirs.ndim >= 2 and theirs.shape[0] >= 2, \
      f"a batch of >= 2 images is needed to see that the logits depend on it: {theirs.shape}"
  diff = float(np.max(np.abs(ours - theirs)))
  scale = float(np.max(np.abs(theirs)))
  effect = float(np.max(np.abs(theirs[1:] - theirs[:1])))
  print(f"max |logit diff| {diff:.3g}, logit scale {scale:.3g}, "
        f"input effect {effect / max(scale, 1e-30):.3g} of scale")
  assert diff <= atol, f"max |logit difference| {diff:.3g} > {atol} (logit scale {scale:.3g})"
  if rtol is not None:
    assert diff <= rtol * scale, f"max |logit difference| {diff:.3g} > {rtol} x logit " \
                                 f"scale {scale:.3g}"
  assert scale > MIN_LOGIT_SCALE, \
      f"logit scale {scale:.3g} too small for the test to discriminate"
  assert effect > MIN_INPUT_EFFECT * scale, \
      f"the source's logits barely depend on the input: the images' rows differ by " \
      f"{effect:.3g}, the logit scale is {scale:.3g}"
  return diff
