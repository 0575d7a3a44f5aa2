"""MobileNet weight conversion: torchvision v2 / v3 and Keras v1 / v2 / v3 give the same
logits as the source with random weights and random BN statistics; Keras gets the raw
image through its own preprocessing, ours the image normalised with the converted
mean/std.

Every variant here is its own representative and compares logits in CI: v1 (depthwise-
separable convs, ReLU6), v2 (inverted residuals) and v3 (squeeze-excite, hard-swish, a
different head) are different blocks and converters, and v3 Large and Small differ in
their block table (kernel sizes, SE and activation per block), not only in repeat counts
or widths. So no variant is moved to `full_size` (see convert_testing:
`assert_weights_mapped` is for such siblings); each runs in ~5-10 s at 32 px anyway."""

import functools

import numpy as np
import pytest

from cnn_jax import convert, models
from cnn_jax.convert import mobilenet as mobilenet_convert
from convert_testing import (assert_logits_match, he_scaled_keras, he_scaled_torch,
                             input_batch, keras_logits, keras_model, ours_logits,
                             torch_logits, torchvision_model)

SIZE = 32  # every registry MobileNet's min_input_size
# Both sources' convs are He-scaled: as initialised the logits ignore the input (the
# images' logits differ by ~1e-7 of their scale; at gain 1 still < 1%). At He scale the
# residual sums of Keras's MobileNetV3-Large grow its logits to ~30, where float32 rounding
# alone (~4e-6 relative, both frameworks) exceeds the 1e-4 bound: the Keras classifiers
# are scaled by this factor (logits and their rounding alike) to keep the logits O(1).
KERAS_CLASSIFIER_SCALE = 0.2

# The Keras module holding each application's own `preprocess_input`.
KERAS_PREPROCESS = {"mobilenet_v1": "mobilenet", "mobilenet_v2": "mobilenet_v2",
                    "mobilenet_v3_large": "mobilenet_v3", "mobilenet_v3_small": "mobilenet_v3"}


def raw_and_normalised(result, size: int, batch: int = 2, seed: int = 0):
  """A raw 0-255 RGB batch and the same batch as our converted model expects it."""
  raw = np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
  ours = (raw / 255.0 - np.asarray(result.mean)) / np.asarray(result.std)
  return raw, ours.astype(np.float32)


@functools.cache
def _keras_source(name):
  source = keras_model(convert.SOURCE_BUILDERS["keras"][name], input_shape=(SIZE, SIZE, 3))
  source = he_scaled_keras(source)
  classifier = [l for l in source.layers if getattr(l, "kernel", None) is not None][-1]
  for v in classifier.weights:
    v.assign(np.asarray(v) * KERAS_CLASSIFIER_SCALE)
  return source


@pytest.mark.parametrize("name", sorted(mobilenet_convert.TORCHVISION))
def test_torchvision_mobilenet_matches(name):
  assert models.spec(name).min_input_size == SIZE
  source = he_scaled_torch(torchvision_model(convert.SOURCE_BUILDERS["torchvision"][name]))
  result = convert.convert("torchvision", name, source.state_dict())
  x = input_batch(SIZE)
  assert_logits_match(ours_logits(result, x), torch_logits(source, x), rtol=1e-4)


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
  assert_logits_match(ours_logits(result, x), theirs, rtol=1e-4)


def test_wrong_pairing_is_a_clear_error():
  source = torchvision_model("mobilenet_v3_large").state_dict()
  with pytest.raises(ValueError, match="weights have 15 blocks, mobilenet_v3_small has 11"):
    convert.convert("torchvision", "mobilenet_v3_small", source)
  with pytest.raises(ValueError, match="weights do not fit 'mobilenet_v2'"):
    convert.convert("torchvision", "mobilenet_v2", source)
  with pytest.raises(ValueError, match="weights have 11 blocks, mobilenet_v3_large has 15"):
    convert.convert("keras", "mobilenet_v3_large", _keras_source("mobilenet_v3_small"))
