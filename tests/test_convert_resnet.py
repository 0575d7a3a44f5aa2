"""ResNet weight conversion: torchvision (v1.5) and Keras applications (v1, caffe input)
give the same logits as the source with random weights and random BN statistics.

Logits in CI, one representative per block design and source: torchvision resnet18
(BasicBlock) and resnet50 (Bottleneck); Keras resnet50 (its smallest ResNet). The others
add nothing numerically: resnet34 is resnet18's BasicBlock code with (3, 4, 6, 3) blocks
per stage instead of (2, 2, 2, 2), resnet101 / resnet152 (torchvision and Keras) are
resnet50's Bottleneck with more blocks in stages 3 and 4; the converter walks the blocks
in the same loop with the same layouts, and the model runs the same block code. Their
logits are compared only in `make test-all` (full_size); in CI each one's mapping is
checked without a compile (`assert_weights_mapped`: tree, shapes, every tensor used once
unchanged, the stem, a stage-3 and a stage-4 tensor, a projection and the classifier
in place).
"""

import re

import numpy as np
import pytest

from cnn_jax import convert
from convert_testing import (names, assert_logits_match, assert_weights_mapped,
                             bgr_to_rgb_hwio, input_batch, keras_logits, keras_model,
                             linear_to_dense, oihw_to_hwio, ours_logits, same, torch_logits,
                             torchvision_model)

SIZE = 32  # the smallest input ResNet takes (stage 4 is 1x1)
# With random BN scales every residual branch is as large as its input, so activations
# roughly double per block: ResNet-152's logits reach ~1e6 and float32 rounding alone
# (~1e-6 relative, in both frameworks) exceeds the 1e-4 absolute bound from ResNet-101 on.
# Trained ResNets end their branches with small BN scales; we scale those random gammas
# by this factor (in the source, before converting) to keep logits O(1) at every depth.
BRANCH_SCALE = 0.2

TORCHVISION_FULL_SIZE = ["resnet34", "resnet101", "resnet152"]  # resnet18's / resnet50's blocks
KERAS_FULL_SIZE = ["resnet101", "resnet152"]  # resnet50's blocks
KERAS_OVERRIDES = {"downsample_in_3x3": False, "conv_bias": True,
                   "bn_epsilon": pytest.approx(1.001e-5)}


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


@pytest.mark.parametrize("name", names(["resnet18", "resnet34", "resnet50", "resnet101",
                                        "resnet152"], full_size=TORCHVISION_FULL_SIZE))
def test_torchvision_resnet_matches(name):
  source = _torchvision_resnet(name)
  result = convert.convert("torchvision", name, source.state_dict())
  assert result.overrides == {}
  x = input_batch(SIZE)
  assert_logits_match(ours_logits(result, x), torch_logits(source, x))


@pytest.mark.parametrize("name", TORCHVISION_FULL_SIZE)
def test_torchvision_resnet_mapping(name):
  state = torchvision_model(convert.SOURCE_BUILDERS["torchvision"][name]).state_dict()
  last = lambda stage: max(int(k.split(".")[1]) for k in state if k.startswith(f"layer{stage}."))
  n = 3 if "layer1.0.conv3.weight" in state else 2  # convs per block
  b3, b4 = last(3), last(4)
  result = assert_weights_mapped("torchvision", name, state, [
      ("conv1.weight", "params/stem_conv/conv/kernel", oihw_to_hwio),
      ("bn1.running_var", "batch_stats/stem_conv/norm/bn/var", same),
      ("layer2.0.downsample.0.weight", "params/stage2_block1/shortcut/proj/conv/kernel",
       oihw_to_hwio),
      (f"layer3.{b3}.conv2.weight", f"params/stage3_block{b3 + 1}/conv2/conv/kernel",
       oihw_to_hwio),
      (f"layer4.{b4}.bn{n}.running_var", f"batch_stats/stage4_block{b4 + 1}/conv{n}/norm/bn/var",
       same),
      ("fc.weight", "params/head/fc/kernel", linear_to_dense),
      ("fc.bias", "params/head/fc/bias", same)], size=SIZE)
  assert result.overrides == {}


@pytest.mark.parametrize("name", names(["resnet50", "resnet101", "resnet152"],
                                      full_size=KERAS_FULL_SIZE))
def test_keras_resnet_matches(name):
  source = _keras_resnet(name)
  result = convert.convert("keras", name, source)
  assert result.overrides == KERAS_OVERRIDES
  # Caffe mode: Keras takes BGR, ours the same pixels as RGB (the stem conv is flipped).
  x = input_batch(SIZE)
  theirs = keras_logits(source, np.ascontiguousarray(x[..., ::-1]))
  assert_logits_match(ours_logits(result, x), theirs)


@pytest.mark.parametrize("name", KERAS_FULL_SIZE)
def test_keras_resnet_mapping(name):
  source = keras_model(convert.SOURCE_BUILDERS["keras"][name], input_shape=(SIZE, SIZE, 3))
  last = lambda stage: max(int(m.group(1)) for v in source.weights
                           if (m := re.match(rf"conv{stage}_block(\d+)_", v.path)))
  b4, b5 = last(4), last(5)  # Keras conv<s + 1> is our stage s
  result = assert_weights_mapped("keras", name, source, [
      ("conv1_conv/kernel", "params/stem_conv/conv/kernel", bgr_to_rgb_hwio),
      ("conv1_conv/bias", "params/stem_conv/conv/bias", same),
      ("conv3_block1_0_conv/kernel", "params/stage2_block1/shortcut/proj/conv/kernel", same),
      (f"conv4_block{b4}_2_conv/kernel", f"params/stage3_block{b4}/conv2/conv/kernel", same),
      (f"conv4_block{b4}_2_conv/bias", f"params/stage3_block{b4}/conv2/conv/bias", same),
      (f"conv5_block{b5}_3_bn/moving_variance",
       f"batch_stats/stage4_block{b5}/conv3/norm/bn/var", same),
      ("predictions/kernel", "params/head/fc/kernel", same),
      ("predictions/bias", "params/head/fc/bias", same)], size=SIZE)
  assert result.overrides == KERAS_OVERRIDES


def test_wrong_model_is_a_clear_error():
  source = torchvision_model("resnet50")
  with pytest.raises(ValueError, match=r"do not fit 'resnet18'.*bottleneck blocks "
                                       r"\(3, 4, 6, 3\).*basic blocks \(2, 2, 2, 2\)"):
    convert.convert("torchvision", "resnet18", source.state_dict())
  with pytest.raises(ValueError, match=r"do not fit 'resnet101'"):
    convert.convert("torchvision", "resnet101", source.state_dict())
