"""Shared checks for the weight-conversion tests: random weights *and* random BatchNorm
statistics in the source model, the same NHWC batch into both, max |difference| of the
logits. torchvision tests skip when torch is absent; Keras runs on its JAX backend."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")

ATOL = 1e-4  # the bound on max |logit difference| in float32


def input_batch(size: int, batch: int = 2, seed: int = 0) -> np.ndarray:
  """Inputs of standard scale (already normalised), NHWC float32."""
  return np.random.default_rng(seed).standard_normal((batch, size, size, 3)).astype(np.float32)


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


def torch_logits(model, x_nhwc: np.ndarray) -> np.ndarray:
  import torch
  with torch.no_grad():
    out = model(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))))
  if isinstance(out, tuple):  # GoogLeNet / Inception v3 namedtuples in train mode
    out = out[0]
  return out.numpy()


# --- Keras -----------------------------------------------------------------------------

def keras_model(builder: str, seed: int = 0, **kwargs):
  """keras.applications.<builder>(weights=None) with randomised BN statistics."""
  from cnn_jax.convert import keras_module
  keras = keras_module()
  keras.utils.set_random_seed(seed)
  kwargs.setdefault("classifier_activation", None)  # logits, not softmax
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


def keras_logits(model, x_nhwc: np.ndarray) -> np.ndarray:
  """Logits (keras_model builds with classifier_activation=None)."""
  out = model(x_nhwc, training=False)
  return np.asarray(out)


def assert_logits_match(ours, theirs, atol: float = ATOL) -> float:
  ours, theirs = np.asarray(ours, np.float32), np.asarray(theirs, np.float32)
  assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
  diff = float(np.max(np.abs(ours - theirs)))
  assert diff <= atol, f"max |logit difference| {diff:.3g} > {atol} (logit scale " \
                       f"{float(np.max(np.abs(theirs))):.3g})"
  return diff
