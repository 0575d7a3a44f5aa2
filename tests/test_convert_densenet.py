"""DenseNet conversion: torchvision and Keras sources with random weights and random BN
statistics give our logits to 1e-4, at the smallest valid resolution.

Cost on 2 CPU cores is compilation, not arithmetic: a DenseNet has hundreds of distinct
tensor shapes (see convert_testing for how the shared helpers keep that down).

Logits in CI: densenet121 from each source, the smallest. densenet169 / densenet201 are
the same dense layer and transition code with more layers in blocks 3 and 4 (and
densenet161 with growth rate 48 and a 96-channel stem): one name table maps every
variant, and the network runs the same block code; what differs is a repeat count or a
width. Their logits are compared only in `make test-all` (full_size); in CI each one's
mapping is checked without a compile (`assert_weights_mapped`: tree, shapes, every tensor
used once unchanged; the stem, the last layer of block 3, the last transition, the final
norm and the classifier in place).
"""

import re

import jax
import numpy as np
import pytest

from cnn_jax import convert, models
from convert_testing import (names, assert_logits_match, assert_weights_mapped, input_batch,
                             keras_logits, keras_model, linear_to_dense, oihw_to_hwio,
                             ours_logits, same, torch_logits, torchvision_model)

TORCHVISION = ["densenet121", "densenet161", "densenet169", "densenet201"]
KERAS = {"densenet121": "DenseNet121", "densenet169": "DenseNet169",
         "densenet201": "DenseNet201"}
FULL_SIZE = ["densenet161", "densenet169", "densenet201"]  # densenet121's blocks, deeper / wider
KERAS_FULL_SIZE = [n for n in FULL_SIZE if n in KERAS]


@pytest.mark.parametrize("name", names(TORCHVISION, full_size=FULL_SIZE))
def test_torchvision_densenet_matches(name):
  source = torchvision_model(name)
  size = models.spec(name).min_input_size
  x = input_batch(size)
  result = convert.convert("torchvision", name, source.state_dict())
  assert result.overrides == {}
  assert result.num_classes == 1000
  diff = assert_logits_match(ours_logits(result, x), torch_logits(source, x))
  print(f"torchvision {name}: max |logit diff| {diff:.3g}")



def _last(keys, pattern: str) -> int:
  """The largest integer `pattern`'s group captures over `keys`."""
  return max(int(m.group(1)) for k in keys if (m := re.match(pattern, k)))


@pytest.mark.parametrize("name", FULL_SIZE)
def test_torchvision_densenet_mapping(name):
  state = torchvision_model(name).state_dict()
  j = _last(state, r"features\.denseblock3\.denselayer(\d+)\.")
  layer = f"features.denseblock3.denselayer{j}"
  result = assert_weights_mapped("torchvision", name, state, [
      ("features.conv0.weight", "params/stem_conv/conv/kernel", oihw_to_hwio),
      (f"{layer}.norm1.running_var", f"batch_stats/block3_layer{j}/bottleneck/norm/bn/var",
       same),
      (f"{layer}.conv2.weight", f"params/block3_layer{j}/conv/conv/kernel", oihw_to_hwio),
      ("features.transition3.conv.weight", "params/transition3/reduce/conv/kernel",
       oihw_to_hwio),
      ("features.norm5.running_var", "batch_stats/final_norm/bn/var", same),
      ("features.norm5.weight", "params/final_norm/bn/scale", same),
      ("classifier.weight", "params/head/fc/kernel", linear_to_dense),
      ("classifier.bias", "params/head/fc/bias", same)])
  assert result.overrides == {}
  assert result.num_classes == 1000

def test_torchvision_old_dense_layer_keys():
  """Pre-0.3 checkpoints spell 'denselayer1.norm.1.weight'; both spellings convert alike."""
  source = torchvision_model("densenet121", num_classes=10)
  new = source.state_dict()
  old = {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v
         for k, v in new.items()}
  assert "features.denseblock1.denselayer1.norm.1.weight" in old
  a = convert.convert("torchvision", "densenet121", new).variables
  b = convert.convert("torchvision", "densenet121", old).variables
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(u, v)
  assert a.keys() == b.keys()


@pytest.mark.parametrize("name", names(sorted(KERAS), full_size=KERAS_FULL_SIZE))
def test_keras_densenet_matches(name):
  size = models.spec(name).min_input_size
  source = keras_model(KERAS[name], input_shape=(size, size, 3))
  x = input_batch(size)
  result = convert.convert("keras", name, source)
  assert result.overrides == {"bn_epsilon": pytest.approx(1.001e-5)}
  assert result.mean == models.IMAGENET_MEAN and result.std == models.IMAGENET_STD
  diff = assert_logits_match(ours_logits(result, x), keras_logits(source, x))
  print(f"keras {name}: max |logit diff| {diff:.3g}")



@pytest.mark.parametrize("name", KERAS_FULL_SIZE)
def test_keras_densenet_mapping(name):
  size = models.spec(name).min_input_size
  source = keras_model(KERAS[name], input_shape=(size, size, 3))
  j = _last([v.path for v in source.weights], r"conv4_block(\d+)_")  # Keras conv4 is block 3
  result = assert_weights_mapped("keras", name, source, [
      ("conv1_conv/kernel", "params/stem_conv/conv/kernel", same),
      (f"conv4_block{j}_0_bn/moving_variance",
       f"batch_stats/block3_layer{j}/bottleneck/norm/bn/var", same),
      (f"conv4_block{j}_2_conv/kernel", f"params/block3_layer{j}/conv/conv/kernel", same),
      ("pool4_conv/kernel", "params/transition3/reduce/conv/kernel", same),
      ("bn/moving_variance", "batch_stats/final_norm/bn/var", same),
      ("bn/gamma", "params/final_norm/bn/scale", same),
      ("predictions/kernel", "params/head/fc/kernel", same),
      ("predictions/bias", "params/head/fc/bias", same)], size=size)
  assert result.overrides == {"bn_epsilon": pytest.approx(1.001e-5)}
  assert result.mean == models.IMAGENET_MEAN and result.std == models.IMAGENET_STD

def test_wrong_variant_is_a_clear_error():
  """densenet121 weights named as densenet169: the missing 25th layer of block 3 is named."""
  state = torchvision_model("densenet121").state_dict()
  with pytest.raises(KeyError, match=r"denseblock3\.denselayer25"):
    convert.convert("torchvision", "densenet169", state)
  # ... and the other way round: the first mis-shaped tensor is named.
  state = torchvision_model("densenet169").state_dict()
  with pytest.raises(ValueError, match=r"transition3/.*ours is \(1024,\)"):
    convert.convert("torchvision", "densenet121", state)
