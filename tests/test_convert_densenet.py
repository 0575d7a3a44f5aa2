"""DenseNet conversion: torchvision and Keras sources with random weights and random BN
statistics give our logits to 1e-4, at the smallest valid resolution.

Cost on 2 CPU cores is compilation, not arithmetic: a DenseNet has hundreds of distinct
tensor shapes (see convert_testing for how the shared helpers keep that down).
"""

import re

import jax
import numpy as np
import pytest

from cnn_jax import convert, models
from convert_testing import (names, assert_logits_match, input_batch, keras_logits, keras_model,
                             ours_logits, torch_logits, torchvision_model)

TORCHVISION = ["densenet121", "densenet161", "densenet169", "densenet201"]
KERAS = {"densenet121": "DenseNet121", "densenet169": "DenseNet169",
         "densenet201": "DenseNet201"}


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_densenet_matches(name):
  source = torchvision_model(name)
  size = models.spec(name).min_input_size
  x = input_batch(size)
  result = convert.convert("torchvision", name, source.state_dict())
  assert result.overrides == {}
  assert result.num_classes == 1000
  diff = assert_logits_match(ours_logits(result, x), torch_logits(source, x))
  print(f"torchvision {name}: max |logit diff| {diff:.3g}")


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


@pytest.mark.parametrize("name", names(sorted(KERAS), slow=["densenet169", "densenet201"]))
def test_keras_densenet_matches(name):
  size = models.spec(name).min_input_size
  source = keras_model(KERAS[name], input_shape=(size, size, 3))
  x = input_batch(size)
  result = convert.convert("keras", name, source)
  assert result.overrides == {"bn_epsilon": pytest.approx(1.001e-5)}
  assert result.mean == models.IMAGENET_MEAN and result.std == models.IMAGENET_STD
  diff = assert_logits_match(ours_logits(result, x), keras_logits(source, x))
  print(f"keras {name}: max |logit diff| {diff:.3g}")


def test_wrong_variant_is_a_clear_error():
  """densenet121 weights named as densenet169: the missing 25th layer of block 3 is named."""
  state = torchvision_model("densenet121").state_dict()
  with pytest.raises(KeyError, match=r"denseblock3\.denselayer25"):
    convert.convert("torchvision", "densenet169", state)
  # ... and the other way round: the first mis-shaped tensor is named.
  state = torchvision_model("densenet169").state_dict()
  with pytest.raises(ValueError, match=r"transition3/.*ours is \(1024,\)"):
    convert.convert("torchvision", "densenet121", state)
