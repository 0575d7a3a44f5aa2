"""ResNet weight conversion: torchvision (v1.5) and Keras applications (v1, caffe input)
give the same logits as the source with random weights and random BN statistics."""

import re

import numpy as np
import pytest

from cnn_jax import convert
from convert_testing import (names, assert_logits_match, input_batch, keras_logits, keras_model,
                             ours_logits, torch_logits, torchvision_model)

SIZE = 32  # the smallest input ResNet takes (stage 4 is 1x1)
# With random BN scales every residual branch is as large as its input, so activations
# roughly double per block: ResNet-152's logits reach ~1e6 and float32 rounding alone
# (~1e-6 relative, in both frameworks) exceeds the 1e-4 absolute bound from ResNet-101 on.
# Trained ResNets end their branches with small BN scales; we scale those random gammas
# by this factor (in the source, before converting) to keep logits O(1) at every depth.
BRANCH_SCALE = 0.2


def _torchvision_resnet(name):
  source = torchvision_model(convert.SOURCE_BUILDERS["torchvision"][name])  # skips w/o torch
  import torch
  import torchvision
  blocks = torchvision.models.resnet
  with torch.no_grad():
    for m in source.modules():
      if isinstance(m, (blocks.BasicBlock, blocks.Bottleneck)):
        last = m.bn3 if isinstance(m, blocks.Bottleneck) else m.bn2
        last.weight.mul_(BRANCH_SCALE)
  return source


def _keras_resnet(name):
  source = keras_model(convert.SOURCE_BUILDERS["keras"][name], input_shape=(SIZE, SIZE, 3))
  for layer in source.layers:
    if re.fullmatch(r"conv\d_block\d+_3_bn", layer.name):
      layer.gamma.assign(np.asarray(layer.gamma) * BRANCH_SCALE)
  return source


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101",
                                  "resnet152"])
def test_torchvision_resnet_matches(name):
  source = _torchvision_resnet(name)
  result = convert.convert("torchvision", name, source.state_dict())
  assert result.overrides == {}
  x = input_batch(SIZE)
  assert_logits_match(ours_logits(result, x), torch_logits(source, x))


@pytest.mark.parametrize("name", names(["resnet50", "resnet101", "resnet152"],
                                      slow=["resnet152"]))
def test_keras_resnet_matches(name):
  source = _keras_resnet(name)
  result = convert.convert("keras", name, source)
  assert result.overrides == {"downsample_in_3x3": False, "conv_bias": True,
                              "bn_epsilon": pytest.approx(1.001e-5)}
  # Caffe mode: Keras takes BGR, ours the same pixels as RGB (the stem conv is flipped).
  x = input_batch(SIZE)
  theirs = keras_logits(source, np.ascontiguousarray(x[..., ::-1]))
  assert_logits_match(ours_logits(result, x), theirs)


def test_wrong_model_is_a_clear_error():
  source = torchvision_model("resnet50")
  with pytest.raises(ValueError, match=r"do not fit 'resnet18'.*bottleneck blocks "
                                       r"\(3, 4, 6, 3\).*basic blocks \(2, 2, 2, 2\)"):
    convert.convert("torchvision", "resnet18", source.state_dict())
  with pytest.raises(ValueError, match=r"do not fit 'resnet101'"):
    convert.convert("torchvision", "resnet101", source.state_dict())
