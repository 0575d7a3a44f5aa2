"""AlexNet / VGG weight conversion: torchvision (NCHW flatten, optional BN) and Keras
applications (NHWC flatten, caffe input) give the source's logits at 224 px, with random
weights and random BN statistics. 224 is the smallest input the FC heads take; at 224
torchvision's adaptive average pool is the identity.

Logits in CI, one representative per design and source: torchvision AlexNet (its own
layer table), vgg11 and vgg11_bn (without and with BatchNorm: a different layer table
and mapping branch); Keras vgg16 (Keras's smallest VGG). vgg13/16/19 (and their _bn
variants, and Keras vgg19) are the same conv(-BN)-ReLU / max-pool code and the same FC
head (fc6 flattened from the 7x7x512 map) with more 3x3 convs per stage: the converter
walks the convs in one loop, so their logits, which cost a 224-px compile and 130-145M
parameters each, add nothing. They are compared only in `make test-all` (full_size); in
CI each one's mapping is checked without a compile (`assert_weights_mapped`: tree,
shapes, every tensor used once unchanged; the first and last conv, a BN, the flattened
fc6 and the classifier in their layouts).
"""

import re

import numpy as np
import pytest

from cnn_jax import convert
from convert_testing import (names, assert_logits_match, assert_weights_mapped,
                             bgr_to_rgb_hwio, input_batch, keras_logits, keras_model,
                             oihw_to_hwio, ours_logits, same, torch_logits, torchvision_model)

SIZE = 224

TORCHVISION = ["alexnet_torchvision", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn",
               "vgg13_bn", "vgg16_bn", "vgg19_bn"]
TORCHVISION_FULL_SIZE = ["vgg13", "vgg16", "vgg19", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
KERAS_FULL_SIZE = ["vgg19"]  # vgg16's layers, 3 convs more
FC6 = (7, 7, 512)  # VGG's last map (h, w, c), flattened into fc6


@pytest.mark.parametrize("name", names(TORCHVISION, full_size=TORCHVISION_FULL_SIZE))
def test_torchvision_classic_matches(name):
  source = torchvision_model(convert.SOURCE_BUILDERS["torchvision"][name])
  result = convert.convert("torchvision", name, source.state_dict())
  assert result.overrides == {} and result.num_classes == 1000
  x = input_batch(SIZE)
  assert_logits_match(ours_logits(result, x), torch_logits(source, x))


FC6_OUTPUTS = 256  # fc6's layout is checked on its first outputs' weights: a full
# transpose of its 100M elements costs ~3 s (the same reshape for every output).


def _torch_fc6(w):
  """torchvision fc6 (out, c*h*w flattened NCHW) -> our (h, w, c, out) conv kernel, for
  the first FC6_OUTPUTS outputs."""
  h, w_, c = FC6
  return w[:FC6_OUTPUTS].reshape(FC6_OUTPUTS, c, h, w_).transpose(2, 3, 1, 0)


def _one_by_one(w):
  """A Linear (out, in) -> our 1x1 conv kernel (1, 1, in, out)."""
  return w.T[None, None]


@pytest.mark.parametrize("name", TORCHVISION_FULL_SIZE)
def test_torchvision_vgg_mapping(name):
  state = torchvision_model(convert.SOURCE_BUILDERS["torchvision"][name]).state_dict()
  convs = [int(m.group(1)) for k in state if (m := re.fullmatch(r"features\.(\d+)\.weight", k))
           and state[k].ndim == 4]
  checks = [("features.0.weight", "params/conv1/conv/kernel", oihw_to_hwio),
            (f"features.{convs[-1]}.weight", f"params/conv{len(convs)}/conv/kernel",
             oihw_to_hwio),
            (f"features.{convs[-1]}.bias", f"params/conv{len(convs)}/conv/bias", same),
            ("classifier.0.weight", "params/head/fc6/kernel", _torch_fc6,
             np.s_[..., :FC6_OUTPUTS]),
            ("classifier.6.weight", "params/head/fc8/kernel", _one_by_one),
            ("classifier.6.bias", "params/head/fc8/bias", same)]
  if name.endswith("_bn"):
    last_bn = f"features.{convs[-1] + 1}"
    checks += [(f"{last_bn}.running_var", f"batch_stats/conv{len(convs)}/norm/bn/var", same),
               (f"{last_bn}.weight", f"params/conv{len(convs)}/norm/bn/scale", same)]
  result = assert_weights_mapped("torchvision", name, state, checks, size=SIZE)
  assert result.overrides == {} and result.num_classes == 1000


@pytest.mark.parametrize("name", names(["vgg16", "vgg19"], full_size=KERAS_FULL_SIZE))
def test_keras_vgg_matches(name):
  source = keras_model(convert.SOURCE_BUILDERS["keras"][name])
  result = convert.convert("keras", name, source)
  # Caffe mode: Keras takes BGR, ours the same pixels as RGB (conv1 is flipped); pixels
  # are on a 0-255 scale (std ~64), which keeps the Glorot-initialised logits away from 0.
  x = 64 * input_batch(SIZE)
  theirs = keras_logits(source, np.ascontiguousarray(x[..., ::-1]))
  assert_logits_match(ours_logits(result, x), theirs)


@pytest.mark.parametrize("name", KERAS_FULL_SIZE)
def test_keras_vgg_mapping(name):
  source = keras_model(convert.SOURCE_BUILDERS["keras"][name])
  convs = sorted((int(m.group(1)), int(m.group(2))) for v in source.weights
                 if (m := re.fullmatch(r"block(\d+)_conv(\d+)/kernel", v.path)))
  b, k = convs[-1]
  result = assert_weights_mapped("keras", name, source, [
      ("block1_conv1/kernel", "params/conv1/conv/kernel", bgr_to_rgb_hwio),
      (f"block{b}_conv{k}/kernel", f"params/conv{len(convs)}/conv/kernel", same),
      (f"block{b}_conv{k}/bias", f"params/conv{len(convs)}/conv/bias", same),
      ("fc1/kernel", "params/head/fc6/kernel", lambda w: w.reshape(*FC6, w.shape[-1])),
      ("predictions/kernel", "params/head/fc8/kernel", lambda w: w[None, None]),
      ("predictions/bias", "params/head/fc8/bias", same)], size=SIZE)
  assert result.overrides == {} and result.num_classes == 1000


def test_wrong_model_is_a_clear_error():
  source = torchvision_model("vgg11_bn")
  with pytest.raises(ValueError, match=r"do not fit 'vgg11'.*8 convs with BatchNorm.*"
                                       r"8 without BatchNorm"):
    convert.convert("torchvision", "vgg11", source.state_dict())
  with pytest.raises(ValueError, match=r"do not fit 'vgg16_bn'.*8 convs.*13 with"):
    convert.convert("torchvision", "vgg16_bn", source.state_dict())
