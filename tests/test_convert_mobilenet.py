"""MobileNet weight conversion: torchvision v2 / v3 and Keras v1 / v2 / v3 give the same
logits as the source with random weights and random BN statistics; Keras gets the raw
image through its own preprocessing, ours the image normalised with the converted
mean/std."""

import functools

import jax
import numpy as np
import pytest

from cnn_jax import convert, models
from cnn_jax.convert import mobilenet as mobilenet_convert
from convert_testing import (assert_logits_match, input_batch, keras_model, torch_logits,
                             torchvision_model)

SIZE = 32  # every registry MobileNet's min_input_size

# The Keras module holding each application's own `preprocess_input`.
KERAS_PREPROCESS = {"mobilenet_v1": "mobilenet", "mobilenet_v2": "mobilenet_v2",
                    "mobilenet_v3_large": "mobilenet_v3", "mobilenet_v3_small": "mobilenet_v3"}


def keras_logits(model, x):
  """The Keras model's logits as one jitted program: eager Keras compiles op by op, which
  costs ~4x more on a fresh model (measured on EfficientNetB0)."""
  forward = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, x, training=False)[0])
  return np.asarray(forward([v.value for v in model.trainable_variables],
                            [v.value for v in model.non_trainable_variables], x))


def _ours(result, x):
  # One jitted program: eager apply dispatches (and compiles) op by op, ~6x slower here.
  model = result.model()
  return jax.jit(lambda v, x: model.apply(v, x, train=False))(result.variables, x)


def assert_match(ours, theirs):
  """The shared absolute bound, and a relative one so that small logits prove as much."""
  diff = assert_logits_match(ours, theirs)
  scale = float(np.max(np.abs(theirs)))
  assert diff <= 1e-4 * scale, f"max |diff| {diff:.3g} vs logit scale {scale:.3g}"
  print(f"max |diff| {diff:.3g}, logit scale {scale:.3g}")


def raw_and_normalised(result, size: int, batch: int = 2, seed: int = 0):
  """A raw 0-255 RGB batch and the same batch as our converted model expects it."""
  raw = np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
  ours = (raw / 255.0 - np.asarray(result.mean)) / np.asarray(result.std)
  return raw, ours.astype(np.float32)


@functools.cache
def _keras_source(name):
  source = keras_model(convert.SOURCE_BUILDERS["keras"][name], input_shape=(SIZE, SIZE, 3))
  return source


@pytest.mark.parametrize("name", sorted(mobilenet_convert.TORCHVISION))
def test_torchvision_mobilenet_matches(name):
  assert models.spec(name).min_input_size == SIZE
  source = torchvision_model(convert.SOURCE_BUILDERS["torchvision"][name])
  result = convert.convert("torchvision", name, source.state_dict())
  x = input_batch(SIZE)
  assert_match(_ours(result, x), torch_logits(source, x))


@pytest.mark.parametrize("name", sorted(mobilenet_convert.KERAS))
def test_keras_mobilenet_matches(name):
  from cnn_jax.convert import keras_module
  keras = keras_module()
  source = _keras_source(name)
  result = convert.convert("keras", name, source)
  assert result.overrides["padding"] == "SAME"
  if name == "mobilenet_v3_small" or name == "mobilenet_v3_large":
    # The embedded Rescaling(1/127.5, -1) is 'tf' mode.
    np.testing.assert_allclose(result.mean, (0.5,) * 3, rtol=1e-6)
    np.testing.assert_allclose(result.std, (0.5,) * 3, rtol=1e-6)
  raw, x = raw_and_normalised(result, SIZE)
  preprocess = getattr(keras.applications, KERAS_PREPROCESS[name]).preprocess_input
  theirs = keras_logits(source, preprocess(raw.copy()))
  assert_match(_ours(result, x), theirs)


def test_wrong_pairing_is_a_clear_error():
  source = torchvision_model("mobilenet_v3_large").state_dict()
  with pytest.raises(ValueError, match="weights have 15 blocks, mobilenet_v3_small has 11"):
    convert.convert("torchvision", "mobilenet_v3_small", source)
  with pytest.raises(ValueError, match="weights do not fit 'mobilenet_v2'"):
    convert.convert("torchvision", "mobilenet_v2", source)
  with pytest.raises(ValueError, match="weights have 11 blocks, mobilenet_v3_large has 15"):
    convert.convert("keras", "mobilenet_v3_large", _keras_source("mobilenet_v3_small"))
