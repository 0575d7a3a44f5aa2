"""EfficientNet weight conversion: torchvision and Keras B0-B7 give the same logits as the
source with random weights and random BN statistics, at the 32x32 minimum input with
batch 2. Keras embeds its preprocessing (Rescaling, Normalization): Keras gets the raw
image, ours the image normalised with the mean/std the converter read from those layers.

BN statistics are calibrated on a batch before they are perturbed: with statistics far
from the activations, random EfficientNets' logits do not depend on the input at all.

Logits in CI: efficientnet_b0 from each source. B1-B7 are B0's MBConv blocks (expand,
depthwise, squeeze-excite, project) with compound-scaled widths and repeat counts; the
converter walks the blocks in one loop for every variant, and the model runs the same
block code. (torchvision's B5-B7 also take the TF port's BN epsilon 1e-3 / momentum 0.01:
an override value, which Keras B0 runs with too, and which the mapping test checks
against the source's BatchNorm modules.) Their logits are compared only in
`make test-all` (full_size); in CI each one's mapping is checked without a compile
(`assert_weights_mapped`: tree, shapes, every tensor used once unchanged; the stem, the
last block's depthwise, squeeze-excite and project tensors, the head conv's BN and the
classifier in place).
"""

import numpy as np
import pytest

from cnn_jax import convert, models
from cnn_jax.convert import efficientnet as efficientnet_convert
from convert_testing import (names, assert_logits_match, assert_weights_mapped,
                             calibrated_keras_bn, calibrated_torch_bn, input_batch,
                             keras_logits, keras_model, linear_to_dense, oihw_to_hwio,
                             ours_logits, same, torch_logits, torchvision_model)

NAMES = sorted(efficientnet_convert.TORCHVISION)
FULL_SIZE = [n for n in NAMES if n != "efficientnet_b0"]  # B0's blocks, scaled up
KERAS_OVERRIDES = {"padding": "SAME", "bn_epsilon": 1e-3, "bn_momentum": 0.99}
# What the Keras Normalization layer holds after loading the ImageNet weights (Keras 3
# stores the std where the variance belongs); random weights leave 0 / 1 there.
KERAS_NORM_MEAN = (0.485, 0.456, 0.406)
KERAS_NORM_VARIANCE = (0.229, 0.224, 0.225)


def _size(name):
  return models.spec(name).min_input_size


@pytest.mark.parametrize("name", names(NAMES, full_size=FULL_SIZE))
def test_torchvision_efficientnet_matches(name):
  source = torchvision_model(convert.SOURCE_BUILDERS["torchvision"][name])
  # Statistics far from the activations make the logits constant (see calibrated_torch_bn).
  calibrated_torch_bn(source, input_batch(_size(name), batch=8, seed=1))
  result = convert.convert("torchvision", name, source.state_dict())
  x = input_batch(_size(name))
  assert_logits_match(ours_logits(result, x), torch_logits(source, x), rtol=1e-4)


@pytest.mark.parametrize("name", FULL_SIZE)
def test_torchvision_efficientnet_mapping(name):
  import torch
  source = torchvision_model(convert.SOURCE_BUILDERS["torchvision"][name])
  state = source.state_dict()
  stages = sorted({int(k.split(".")[1]) for k in state if k.startswith("features.")})
  blocks = sorted({k.split(".block.")[0] for k in state if ".block." in k})
  n, last = len(blocks), f"{blocks[-1]}.block"  # our block<n> is the source's last MBConv
  assert last.startswith(f"features.{stages[-2]}.")
  result = assert_weights_mapped("torchvision", name, state, [
      ("features.0.0.weight", "params/stem_conv/conv/kernel", oihw_to_hwio),
      (f"{last}.1.0.weight", f"params/block{n}/depthwise/conv/kernel", oihw_to_hwio),
      (f"{last}.2.fc1.weight", f"params/block{n}/se/reduce/kernel", oihw_to_hwio),
      (f"{last}.2.fc1.bias", f"params/block{n}/se/reduce/bias", same),
      (f"{last}.3.1.running_var", f"batch_stats/block{n}/project/norm/bn/var", same),
      (f"features.{stages[-1]}.1.running_var", "batch_stats/head_conv/norm/bn/var", same),
      ("classifier.1.weight", "params/head/fc/kernel", linear_to_dense),
      ("classifier.1.bias", "params/head/fc/bias", same)])
  # The BN settings are overrides the converter sets per variant: the source's own.
  bns = {(m.eps, m.momentum) for m in source.modules()
         if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
  assert len(bns) == 1
  ((eps, momentum),) = bns
  assert result.overrides == {"bn_epsilon": pytest.approx(eps),
                              "bn_momentum": pytest.approx(1 - momentum)}


def _keras_source(name, calibrate=True):
  from cnn_jax.convert import keras_module
  keras = keras_module()
  size = _size(name)
  source = keras_model(convert.SOURCE_BUILDERS["keras"][name], input_shape=(size, size, 3))
  (norm,) = [l for l in source.layers if isinstance(l, keras.layers.Normalization)]
  norm.adapt_mean.assign(np.asarray(KERAS_NORM_MEAN, np.float32))
  norm.adapt_variance.assign(np.asarray(KERAS_NORM_VARIANCE, np.float32))
  norm.finalize_state()  # what load_weights does after assigning them
  if not calibrate:
    return source
  raw = np.random.default_rng(1).uniform(0, 255, (8, size, size, 3)).astype(np.float32)
  return calibrated_keras_bn(source, raw)


def _assert_keras_normalisation(result):
  # Rescaling(1/255) then Normalization: (rgb01 - mean) / sqrt(variance).
  np.testing.assert_allclose(result.mean, KERAS_NORM_MEAN, rtol=1e-6)
  np.testing.assert_allclose(result.std, np.sqrt(KERAS_NORM_VARIANCE), rtol=1e-6)


@pytest.mark.parametrize("name", names(NAMES, full_size=FULL_SIZE))
def test_keras_efficientnet_matches(name):
  source = _keras_source(name)
  result = convert.convert("keras", name, source)
  assert result.overrides == KERAS_OVERRIDES
  _assert_keras_normalisation(result)
  size = _size(name)
  raw = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
  x = ((raw / 255.0 - np.asarray(result.mean)) / np.asarray(result.std)).astype(np.float32)
  assert_logits_match(ours_logits(result, x), keras_logits(source, raw), rtol=1e-4)


@pytest.mark.parametrize("name", FULL_SIZE)
def test_keras_efficientnet_mapping(name):
  source = _keras_source(name, calibrate=False)
  # Block layers are block<stage><letter>_<part>; our block<n> is the last of them.
  blocks = sorted({v.path.split("_", 1)[0] for v in source.weights
                   if v.path.startswith("block")}, key=lambda b: (int(b[5:-1]), b[-1]))
  n, last = len(blocks), blocks[-1]
  # The Normalization's mean / variance become result.mean / std, not variables ('count'
  # is ignored). Keras numbers layer names per session: 'normalization_3/mean'.
  from cnn_jax.convert import keras_module
  (norm,) = [l for l in source.layers if isinstance(l, keras_module().layers.Normalization)]
  preprocessing = [v.path for v in norm.weights if not v.path.endswith("/count")]
  assert len(preprocessing) == 2, preprocessing
  result = assert_weights_mapped("keras", name, source, [
      ("stem_conv/kernel", "params/stem_conv/conv/kernel", same),
      (f"{last}_dwconv/kernel", f"params/block{n}/depthwise/conv/kernel",
       lambda w: w.reshape(*w.shape[:2], 1, -1)),  # (kh, kw, C, 1) -> grouped (kh, kw, 1, C)
      (f"{last}_se_reduce/kernel", f"params/block{n}/se/reduce/kernel", same),
      (f"{last}_se_reduce/bias", f"params/block{n}/se/reduce/bias", same),
      (f"{last}_project_bn/moving_variance", f"batch_stats/block{n}/project/norm/bn/var",
       same),
      ("top_bn/moving_variance", "batch_stats/head_conv/norm/bn/var", same),
      ("predictions/kernel", "params/head/fc/kernel", same),
      ("predictions/bias", "params/head/fc/bias", same)],
      size=_size(name), outside_variables=preprocessing)
  assert result.overrides == KERAS_OVERRIDES
  _assert_keras_normalisation(result)


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
