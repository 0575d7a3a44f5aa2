"""EfficientNet weight conversion: torchvision and Keras B0-B7 give the same logits as the
source with random weights and random BN statistics, at the 32x32 minimum input with
batch 2. Keras embeds its preprocessing (Rescaling, Normalization): Keras gets the raw
image, ours the image normalised with the mean/std the converter read from those layers.

BN statistics are calibrated on a batch before they are perturbed: with statistics far
from the activations, random EfficientNets' logits do not depend on the input at all.
"""

import numpy as np
import pytest

from cnn_jax import convert, models
from cnn_jax.convert import efficientnet as efficientnet_convert
from convert_testing import (names, assert_logits_match, calibrated_keras_bn, calibrated_torch_bn,
                             input_batch, keras_logits, keras_model, ours_logits,
                             torch_logits, torchvision_model)

NAMES = sorted(efficientnet_convert.TORCHVISION)
# What the Keras Normalization layer holds after loading the ImageNet weights (Keras 3
# stores the std where the variance belongs); random weights leave 0 / 1 there.
KERAS_NORM_MEAN = (0.485, 0.456, 0.406)
KERAS_NORM_VARIANCE = (0.229, 0.224, 0.225)


def _size(name):
  return models.spec(name).min_input_size


@pytest.mark.parametrize("name", NAMES)
def test_torchvision_efficientnet_matches(name):
  source = torchvision_model(convert.SOURCE_BUILDERS["torchvision"][name])
  # Statistics far from the activations make the logits constant (see calibrated_torch_bn).
  calibrated_torch_bn(source, input_batch(_size(name), batch=8, seed=1))
  result = convert.convert("torchvision", name, source.state_dict())
  x = input_batch(_size(name))
  assert_logits_match(ours_logits(result, x), torch_logits(source, x), rtol=1e-4)


def _keras_source(name):
  from cnn_jax.convert import keras_module
  keras = keras_module()
  size = _size(name)
  source = keras_model(convert.SOURCE_BUILDERS["keras"][name], input_shape=(size, size, 3))
  (norm,) = [l for l in source.layers if isinstance(l, keras.layers.Normalization)]
  norm.adapt_mean.assign(np.asarray(KERAS_NORM_MEAN, np.float32))
  norm.adapt_variance.assign(np.asarray(KERAS_NORM_VARIANCE, np.float32))
  norm.finalize_state()  # what load_weights does after assigning them
  raw = np.random.default_rng(1).uniform(0, 255, (8, size, size, 3)).astype(np.float32)
  return calibrated_keras_bn(source, raw)


@pytest.mark.parametrize("name", names(NAMES, slow=[f"efficientnet_b{i}" for i in range(4, 8)]))
def test_keras_efficientnet_matches(name):
  source = _keras_source(name)
  result = convert.convert("keras", name, source)
  assert result.overrides == {"padding": "SAME", "bn_epsilon": 1e-3, "bn_momentum": 0.99}
  # Rescaling(1/255) then Normalization: (rgb01 - mean) / sqrt(variance).
  np.testing.assert_allclose(result.mean, KERAS_NORM_MEAN, rtol=1e-6)
  np.testing.assert_allclose(result.std, np.sqrt(KERAS_NORM_VARIANCE), rtol=1e-6)
  size = _size(name)
  raw = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
  x = ((raw / 255.0 - np.asarray(result.mean)) / np.asarray(result.std)).astype(np.float32)
  assert_logits_match(ours_logits(result, x), keras_logits(source, raw), rtol=1e-4)


def test_keras_imagenet_preprocessing_is_read_from_the_layers():
  """weights='imagenet' adds Rescaling(1/sqrt(stddev)) after the Normalization (it holds
  the std as 'variance'); the converter composes whatever layers are there."""
  from cnn_jax.convert import keras_module
  from cnn_jax.convert.common import SourceWeights
  from cnn_jax.convert.mobilenet import keras_input_normalisation
  keras = keras_module()
  std = np.asarray(KERAS_NORM_VARIANCE)
  inputs = keras.Input((8, 8, 3))
  x = keras.layers.Rescaling(1 / 255)(inputs)
  x = keras.layers.Normalization(mean=KERAS_NORM_MEAN, variance=std)(x)
  x = keras.layers.Rescaling([1 / np.sqrt(s) for s in std])(x)
  x = keras.layers.Conv2D(4, 3)(x)
  model = keras.Model(inputs, x)
  mean, got_std = keras_input_normalisation("test", model, SourceWeights({}, "keras"), None)
  np.testing.assert_allclose(mean, KERAS_NORM_MEAN, rtol=1e-6)
  np.testing.assert_allclose(got_std, std, rtol=1e-6)  # the true ImageNet std

  x = keras.layers.Normalization(axis=(1, 2, 3), mean=0.0, variance=1.0)(inputs)
  model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(x))
  with pytest.raises(ValueError, match="not the channels"):
    keras_input_normalisation("test", model, SourceWeights({}, "keras"), None)


def test_wrong_pairing_is_a_clear_error():
  source = torchvision_model("efficientnet_b1").state_dict()
  with pytest.raises(ValueError, match="weights have 23 blocks, efficientnet_b0 has 16"):
    convert.convert("torchvision", "efficientnet_b0", source)
  source = torchvision_model("efficientnet_b0").state_dict()
  with pytest.raises(ValueError, match="weights do not fit 'efficientnet_b2'"):
    convert.convert("torchvision", "efficientnet_b2", source)
