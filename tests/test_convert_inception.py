"""GoogLeNet / Inception conversion: torchvision and Keras sources with random weights and
random BN statistics give our logits to 1e-4, at the smallest valid resolution (75 px for
Inception v3 / Inception-ResNet v2).

Every variant here is its own representative and compares logits in CI: GoogLeNet,
Inception v3 and Inception-ResNet v2 are different architectures (different inception
modules, stems, grids and converters), not deeper or wider repeats of one block, so no
variant is moved to `full_size` (see convert_testing: `assert_weights_mapped` is for
such siblings). With and without aux heads are different source state dicts (the aux
heads' weights converted, or absent), each compared."""

import functools
import json

import numpy as np
import pytest

from cnn_jax import convert, models
from cnn_jax.layers import ConvNormAct
from cnn_jax.layers.inception import AuxClassifier
from cnn_jax.layers.pooling import avg_pool
from convert_testing import (names, assert_logits_match, he_scaled_keras, he_scaled_torch,
                             input_batch, keras_logits, keras_model, ours_logits,
                             torch_logits, torchvision_model)

# ours -> torchvision builder; the torchvision source is built with transform_input=False
# so that both models see the same already-normalised batch.
TORCHVISION = {"googlenet_torchvision": "googlenet", "inception_v3": "inception_v3"}
KERAS = {"inception_v3": "InceptionV3", "inception_resnet_v2": "InceptionResNetV2"}
KERAS_HE_SCALED = {"inception_v3"}  # see _he_scaled_keras


def _he_scaled_keras(model):
  """`he_scaled_keras`, only for plain (non-residual) networks: Inception-ResNet-v2's
  identity paths carry the input to the logits already, and at He scale its 40 residual
  sums grow the logits ~30x (and float32 rounding too)."""
  return he_scaled_keras(model)


def _size(name):
  return models.spec(name).min_input_size


@pytest.mark.parametrize("aux", [True, False], ids=["aux", "no_aux"])
@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_inception_matches(name, aux):
  source = he_scaled_torch(torchvision_model(TORCHVISION[name], aux_logits=aux,
                                              transform_input=False, init_weights=False))
  x = input_batch(_size(name))
  result = convert.convert("torchvision", name, source.state_dict())
  assert result.overrides["aux_logits"] is aux
  assert result.overrides["bn_epsilon"] == 1e-3
  assert result.num_classes == 1000
  assert result.mean == result.std == (0.5, 0.5, 0.5)
  assert json.loads(json.dumps(result.metadata()))["overrides"] == result.overrides
  theirs = torch_logits(source, x)
  assert_logits_match(ours_logits(result, x), theirs)


# (torchvision module, our head, its input: channels and the paper-resolution grid).
AUX_HEADS = [("googlenet_torchvision", "aux1", "aux_head1", 512, 14),
             ("googlenet_torchvision", "aux2", "aux_head2", 528, 14),
             ("inception_v3", "AuxLogits", "aux_head1", 768, 17)]


@pytest.mark.parametrize("name,theirs,ours,channels,grid", AUX_HEADS)
def test_torchvision_aux_heads_match(name, theirs, ours, channels, grid):
  """The aux heads (GoogLeNet's NCHW-flattened FC 1 included) on a feature map of the
  paper's size, both heads in eval mode (running BN statistics, no dropout)."""
  torch = pytest.importorskip("torch")
  source = he_scaled_torch(torchvision_model(TORCHVISION[name], aux_logits=True,
                                              transform_input=False, init_weights=False))
  result = convert.convert("torchvision", name, source.state_dict())
  model = result.model()
  conv_block = functools.partial(ConvNormAct, bn_epsilon=model.bn_epsilon)
  head = AuxClassifier(result.num_classes, model.aux_head, conv_block)
  head_vars = {k: v[ours] for k, v in result.variables.items()}
  x = np.random.default_rng(0).standard_normal((2, grid, grid, channels), np.float32)
  with torch.no_grad():
    theirs_out = getattr(source, theirs)(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
  assert_logits_match(head.apply(head_vars, x, train=False), theirs_out.numpy())


def test_torchvision_released_input_convention():
  """torchvision's released weights run with transform_input=True: torchvision fed an
  ImageNet-normalised image equals ours fed the same image with the converter's mean/std."""
  name = "googlenet_torchvision"
  source = he_scaled_torch(torchvision_model("googlenet", transform_input=True,
                                              init_weights=False))
  rgb01 = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
  imagenet = (rgb01 - np.float32(models.IMAGENET_MEAN)) / np.float32(models.IMAGENET_STD)
  result = convert.convert("torchvision", name, source.state_dict())
  ours_in = (rgb01 - np.float32(result.mean)) / np.float32(result.std)
  theirs = torch_logits(source, imagenet)
  assert_logits_match(ours_logits(result, ours_in), theirs)


@pytest.fixture(scope="module")
def keras_sources():
  """Keras builds are slow on CPU (random init op by op): build each model once."""
  cache = {}

  def get(name):
    if name not in cache:
      size = _size(name)
      source = keras_model(KERAS[name], input_shape=(size, size, 3))
      cache[name] = _he_scaled_keras(source) if name in KERAS_HE_SCALED else source
    return cache[name]
  return get


@pytest.mark.parametrize("name", names(sorted(KERAS), slow=["inception_resnet_v2"]))
def test_keras_inception_matches(name, keras_sources):
  source = keras_sources(name)
  x = input_batch(_size(name))
  result = convert.convert("keras", name, source)
  expected = {"bn_epsilon": 1e-3, "bn_scale": False, "pool_count_include_pad": False}
  if name == "inception_v3":
    expected["aux_logits"] = False
  assert result.overrides == expected
  assert result.mean == result.std == (0.5, 0.5, 0.5)  # Keras 'tf' mode: x / 127.5 - 1
  assert result.num_classes == 1000
  assert json.loads(json.dumps(result.metadata()))["overrides"] == result.overrides
  theirs = keras_logits(source, x)
  assert_logits_match(ours_logits(result, x), theirs)


def test_wrong_pairing_is_a_clear_error(keras_sources):
  with pytest.raises(ValueError, match="InceptionResNetV2"):
    convert.convert("keras", "inception_resnet_v2", keras_sources("inception_v3"))


def test_wrong_torchvision_pairing_is_a_clear_error():
  source = torchvision_model("googlenet", aux_logits=False, init_weights=False)
  with pytest.raises(KeyError, match="Conv2d_1a_3x3"):
    convert.convert("torchvision", "inception_v3", source.state_dict())


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("window,stride,padding", [(3, 1, 1), (3, 2, 1), (5, 3, 0), (2, 2, 0)])
def test_avg_pool_matches_pytorch(window, stride, padding, ceil_mode):
  """torchvision's Inception v3 averages with the padding counted (count_include_pad):
  the padded border divides by the full window, ceil-mode overhang does not."""
  torch = pytest.importorskip("torch")
  for size in (7, 8):
    x = np.random.default_rng(size).standard_normal((2, size, size, 3), np.float32)
    for include in (True, False):
      ours = avg_pool(x, window, stride, padding, ceil_mode, include)
      theirs = torch.nn.functional.avg_pool2d(
          torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), window, stride, padding,
          ceil_mode=ceil_mode, count_include_pad=include).numpy().transpose(0, 2, 3, 1)
      np.testing.assert_allclose(ours, theirs, atol=1e-6)
