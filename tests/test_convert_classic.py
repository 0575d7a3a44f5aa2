"""AlexNet / VGG weight conversion: torchvision (NCHW flatten, optional BN) and Keras
applications (NHWC flatten, caffe input) give the source's logits at 224 px, with random
weights and random BN statistics. 224 is the smallest input the FC heads take; at 224
torchvision's adaptive average pool is the identity."""

import numpy as np
import pytest

from cnn_jax import convert
from convert_testing import (assert_logits_match, input_batch, keras_logits, keras_model,
                             ours_logits, torch_logits, torchvision_model)

SIZE = 224

TORCHVISION = ["alexnet_torchvision", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn",
               "vgg13_bn", "vgg16_bn", "vgg19_bn"]


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_classic_matches(name):
  source = torchvision_model(convert.SOURCE_BUILDERS["torchvision"][name])
  result = convert.convert("torchvision", name, source.state_dict())
  assert result.overrides == {} and result.num_classes == 1000
  x = input_batch(SIZE)
  assert_logits_match(ours_logits(result, x), torch_logits(source, x))


@pytest.mark.parametrize("name", ["vgg16", "vgg19"])
def test_keras_vgg_matches(name):
  source = keras_model(convert.SOURCE_BUILDERS["keras"][name])
  result = convert.convert("keras", name, source)
  # Caffe mode: Keras takes BGR, ours the same pixels as RGB (conv1 is flipped); pixels
  # are on a 0-255 scale (std ~64), which keeps the Glorot-initialised logits away from 0.
  x = 64 * input_batch(SIZE)
  theirs = keras_logits(source, np.ascontiguousarray(x[..., ::-1]))
  assert_logits_match(ours_logits(result, x), theirs)


def test_wrong_model_is_a_clear_error():
  source = torchvision_model("vgg11_bn")
  with pytest.raises(ValueError, match=r"do not fit 'vgg11'.*8 convs with BatchNorm.*"
                                       r"8 without BatchNorm"):
    convert.convert("torchvision", "vgg11", source.state_dict())
  with pytest.raises(ValueError, match=r"do not fit 'vgg16_bn'.*8 convs.*13 with"):
    convert.convert("torchvision", "vgg16_bn", source.state_dict())
