"""AlexNet, ZFNet, VGG, and ResNet's plain / option-A variants."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import models
from cnn_jax.layers import classic
from cnn_jax.models import classic as family
from model_testing import (abstract_train_step, assert_param_count, fast_jit,
                           forward_and_train_step)

# AlexNet, ZFNet and VGG-C are derived from the papers' layer tables; the others are
# torchvision's published counts (docs/parameter_counts.md lists each with its source).
CLASSIC_PARAMS = {
    "alexnet": 60_965_224,
    "alexnet_torchvision": 61_100_840,
    "zfnet": 62_357_608,
    "vgg11": 132_863_336,
    "vgg11_lrn": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16_conv1": 133_638_952,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840,
    "vgg13_bn": 133_053_736,
    "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
}
# The ResNet paper's 18/34 with option-A shortcuts, and its plain nets (no shortcuts):
# option A adds no parameters, so both equal torchvision's count minus the projections.
PLAIN_PARAMS = {"plain18": 11_515_688, "plain34": 21_623_848}

# Smallest input whose last map is 1x1, for the tests' fc_window=1 heads.
SMALL_INPUT = {"alexnet": 67, "alexnet_torchvision": 63, "zfnet": 47}
SMALL_HEAD = dict(fc_window=1, fc_features=(8, 8))
SMALL_CLASSES = 8


def _small(name, **overrides):
  """`name`'s layer list with every conv 8 wide, 8-wide FC layers and 8 classes.

  One width keeps the number of distinct kernel shapes, and so of CPU compilations of
  their random initialisers (about a second each), to a handful for the whole file.
  """
  layers = tuple(dataclasses.replace(l, features=8) if isinstance(l, family.ConvSpec) else l
                 for l in models.create(name).layers)
  return models.create(name, num_classes=SMALL_CLASSES, layers=layers,
                       **{**SMALL_HEAD, **overrides})


def _abstract_init(model, size, **kwargs):
  init = functools.partial(model.init, train=False, **kwargs)
  return jax.eval_shape(init, jax.random.key(0), jnp.zeros((1, size, size, 3)))


@pytest.mark.parametrize("name,expected", sorted({**CLASSIC_PARAMS, **PLAIN_PARAMS}.items()))
def test_param_counts(name, expected):
  assert_param_count(name, expected)


@pytest.mark.parametrize("depth", [18, 34])
def test_option_a_shortcuts(depth):
  assert_param_count(f"resnet{depth}", PLAIN_PARAMS[f"plain{depth}"], shortcut="zero_pad")


def test_plain_nets_have_no_shortcut_parameters():
  params = _abstract_init(models.create("plain18"), 224)["params"]
  assert not any("proj" in jax.tree_util.keystr(p)
                 for p, _ in jax.tree_util.tree_leaves_with_path(params))


def test_vgg_variants_differ_only_in_table1_column():
  layers = {n: models.create(n).layers for n in
            ("vgg11", "vgg11_lrn", "vgg13", "vgg16_conv1", "vgg16", "vgg19")}
  assert layers["vgg11_lrn"] == layers["vgg11"][:1] + (family.LRN,) + layers["vgg11"][1:]
  convs = {n: [l for l in ls if isinstance(l, family.ConvSpec)] for n, ls in layers.items()}
  assert [len(c) for c in convs.values()] == [8, 8, 10, 13, 13, 16]
  assert [c.kernel for c in convs["vgg16_conv1"]].count(1) == 3
  assert models.create("vgg16_bn").layers == layers["vgg16"]


def test_alexnet_towers_and_map_sizes():
  model = models.create("alexnet")
  params = _abstract_init(model, 227)["params"]
  # Two towers: conv2/4/5 see half of the previous layer's maps (Section 3.2).
  assert params["conv2"]["conv"]["kernel"].shape == (5, 5, 48, 256)
  assert params["conv3"]["conv"]["kernel"].shape == (3, 3, 256, 384)
  assert params["conv4"]["conv"]["kernel"].shape == (3, 3, 192, 384)
  assert params["conv5"]["conv"]["kernel"].shape == (3, 3, 192, 256)
  assert params["head"]["fc6"]["kernel"].shape == (6, 6, 256, 4096)
  state = jax.eval_shape(lambda v: model.apply(
      v, jnp.zeros((1, 227, 227, 3)), mutable=["intermediates"])[1],
      _abstract_init(model, 227))
  sizes = [state["intermediates"][f"stage{i}"][0].shape[1] for i in (1, 2, 3)]
  assert sizes == [27, 13, 6]


def test_zfnet_map_sizes_match_figure_3():
  model = models.create("zfnet")
  captured = jax.eval_shape(lambda: model.init_with_output(
      jax.random.key(0), jnp.zeros((1, 224, 224, 3)), capture_intermediates=True)[1])
  inter = captured["intermediates"]
  assert inter["conv1"]["__call__"][0].shape == (1, 110, 110, 96)
  assert inter["conv2"]["__call__"][0].shape == (1, 26, 26, 256)
  assert inter["conv5"]["__call__"][0].shape == (1, 13, 13, 256)
  # Ceil-mode pooling: 110 -> 55 and 26 -> 13 (floor mode would give 54 and 12).
  variables = {k: v for k, v in captured.items() if k != "intermediates"}
  state = jax.eval_shape(lambda v: model.apply(
      v, jnp.zeros((1, 224, 224, 3)), mutable=["intermediates"])[1], variables)
  sizes = [state["intermediates"][f"stage{i}"][0].shape[1] for i in (1, 2, 3)]
  assert sizes == [55, 13, 6]


@pytest.mark.parametrize("name", ["alexnet", "alexnet_torchvision", "zfnet", "vgg11"])
def test_min_input_size_is_smallest_that_reaches_fc6(name):
  spec = models.spec(name)
  model = models.create(name)
  _abstract_init(model, spec.min_input_size)
  with pytest.raises(ValueError, match="dense evaluation"):
    _abstract_init(model, spec.min_input_size - 1)
  with pytest.raises(ValueError, match="dense evaluation"):
    _abstract_init(model, 2 * spec.input_size)  # larger inputs need dense_eval=True


# Compiled: every kind of layer list (AlexNet's two, ZFNet, VGG with LRN, with BatchNorm,
# with 1x1 convs). The deeper VGGs repeat vgg11's and vgg11_bn's layers, so they are
# traced: init, forward and gradient shapes, nothing compiled.
COMPILED = ["alexnet", "alexnet_torchvision", "zfnet", "vgg11", "vgg11_lrn", "vgg11_bn",
            "vgg16_conv1"]


@pytest.mark.parametrize("name", sorted(CLASSIC_PARAMS))
def test_forward_and_train_step(name):
  if name not in COMPILED:
    abstract_train_step(_small(name), size=SMALL_INPUT.get(name, 32),
                        num_classes=SMALL_CLASSES)
    return
  loss0, loss1 = forward_and_train_step(_small(name), size=SMALL_INPUT.get(name, 32),
                                        num_classes=SMALL_CLASSES)
  assert loss1 != loss0


def test_plain_train_step():
  """plain18 compiled; plain34 (the same blocks, deeper) traced."""
  forward_and_train_step(models.create("plain18", num_classes=10, width=8), size=32,
                         num_classes=10)
  abstract_train_step(models.create("plain34", num_classes=10, width=8), size=32,
                      num_classes=10)


def test_option_a_forward():
  model = models.create("resnet18", num_classes=10, width=8, shortcut="zero_pad")
  x = jnp.ones((2, 32, 32, 3))
  variables = fast_jit(functools.partial(model.init, train=False))(jax.random.key(0), x)
  logits = fast_jit(functools.partial(model.apply, train=False))(variables, x)
  assert logits.shape == (2, 10) and np.all(np.isfinite(logits))


@pytest.mark.parametrize("name,size", [("alexnet", 227), ("vgg11", 224)])
def test_dense_evaluation_from_the_same_parameters(name, size):
  window = models.create(name).fc_window
  model = _small(name, fc_window=window)
  dense = _small(name, fc_window=window, dense_eval=True)
  x = jax.random.normal(jax.random.key(1), (2, size + 64, size + 64, 3))

  @fast_jit  # one program (op by op, the passes took 2-4 s on 2 cores; now 1 s)
  def passes(x):
    crop = x[:, :size, :size]
    variables = model.init(jax.random.key(0), crop, train=False)
    return (dense.apply(variables, crop), model.apply(variables, crop),
            dense.apply(variables, x, mutable=["intermediates"]))

  dense_crop, model_crop, (logits, state) = passes(x)
  # On the training crop, dense evaluation is the ordinary forward pass.
  np.testing.assert_allclose(dense_crop, model_crop, rtol=1e-5, atol=1e-6)
  # On a larger image the class scores form a map, averaged into [N, classes].
  class_map = state["intermediates"]["head"]["class_map"][0]
  assert logits.shape == (2, SMALL_CLASSES)
  assert class_map.shape[1:] == (3, 3, SMALL_CLASSES)  # 64 more pixels: 2 more fc6 positions
  np.testing.assert_allclose(logits, class_map.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def _lrn_reference(a, n=5, alpha=1e-4, beta=0.75, k=2.0):
  """Section 3.3 of Krizhevsky et al., written out channel by channel."""
  channels = a.shape[-1]
  out = np.empty_like(a)
  for i in range(channels):
    lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
    out[..., i] = a[..., i] / (k + alpha * np.sum(a[..., lo:hi + 1] ** 2, axis=-1)) ** beta
  return out


def test_local_response_norm_matches_paper_formula():
  a = np.random.default_rng(0).normal(0, 30, (2, 3, 4, 11)).astype(np.float32)
  np.testing.assert_allclose(classic.local_response_norm(jnp.asarray(a)), _lrn_reference(a),
                             rtol=1e-5)
  np.testing.assert_allclose(classic.local_response_norm(jnp.asarray(a), 3, 1e-3, 0.5, 1.0),
                             _lrn_reference(a, 3, 1e-3, 0.5, 1.0), rtol=1e-5)
  out = classic.local_response_norm(jnp.asarray(a, jnp.bfloat16))
  assert out.dtype == jnp.bfloat16


def test_local_contrast_norm_subtracts_local_mean():
  a = np.random.default_rng(1).normal(0, 30, (2, 3, 4, 11)).astype(np.float32)
  channels = a.shape[-1]
  mean = np.stack([a[..., max(0, i - 2):min(channels, i + 3)].mean(-1)
                   for i in range(channels)], axis=-1)
  np.testing.assert_allclose(classic.local_contrast_norm(jnp.asarray(a)),
                             _lrn_reference(a - mean), rtol=1e-5, atol=1e-6)
  # A constant across channels has no contrast.
  np.testing.assert_allclose(classic.local_contrast_norm(jnp.full((1, 2, 2, 8), 5.0)), 0.0,
                             atol=1e-6)


def test_alexnet_paper_init_biases_and_std():
  model = _small("alexnet")
  params = model.init(jax.random.key(0), jnp.zeros((1, 67, 67, 3)), train=False)["params"]
  # Section 5: biases 1 in conv2, conv4, conv5 and the hidden FC layers, 0 elsewhere.
  ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
  convs = {n: params[n]["conv"] for n in ("conv1", "conv2", "conv3", "conv4", "conv5")}
  for layer, p in {**convs, **params["head"]}.items():
    assert np.all(np.asarray(p["bias"]) == (1.0 if layer in ones else 0.0)), layer
  assert abs(float(jnp.std(params["conv1"]["conv"]["kernel"])) - 0.01) < 5e-4


@pytest.mark.parametrize("scheme", classic.INIT_SCHEMES)
def test_init_schemes(scheme):
  params = _small("vgg11", weight_init=scheme).init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)["params"]
  fans = 9 * 8  # every conv is 3x3, 8 -> 8 in _small
  expected = {"paper": 0.01, "glorot": np.sqrt(2 / (fans + fans)), "he": np.sqrt(2 / fans)}
  kernels = np.concatenate([np.ravel(params[f"conv{i}"]["conv"]["kernel"]) for i in (2, 3, 4)])
  assert abs(kernels.std() / expected[scheme] - 1) < 0.05
  assert all(np.all(np.asarray(p) == 0) for p in jax.tree.leaves(params)
             if p.ndim == 1)  # VGG's biases start at 0 (Section 3.1)


def test_fully_connected_init_uses_dense_fans():
  """fc6 is stored as a window x window conv but initialised as the flattened dense layer."""
  shape = (6, 6, 8, 8)  # AlexNet's fc6 window, as in the other tests' small models
  for scheme, std in {"paper": 0.01, "glorot": np.sqrt(2 / (36 * 8 + 8)),
                      "he": 0.01}.items():  # torchvision's VGG: N(0, 0.01) for FC layers
    kernel = classic.classic_kernel_init(scheme, fully_connected=True)(jax.random.key(0), shape)
    assert abs(float(jnp.std(kernel)) / std - 1) < 0.05, scheme
  with pytest.raises(ValueError, match="unknown init"):
    classic.classic_kernel_init("xavier")


def test_bfloat16_compute_keeps_float32_params():
  model = _small("vgg11_bn", dtype=jnp.bfloat16)
  variables = _abstract_init(model, 32)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
  logits = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, 32, 32, 3))), variables)
  assert logits.dtype == jnp.bfloat16


def test_dropout_uses_dropout_rng():
  model = _small("vgg11")
  x = jnp.ones((2, 32, 32, 3))
  variables = model.init(jax.random.key(0), x, train=False)
  with pytest.raises(Exception, match="dropout"):
    model.apply(variables, x, train=True)
  out = [model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(i)})
         for i in (1, 2)]
  assert not np.allclose(out[0], out[1])


def test_vgg_width_multiplier():
  setting = dict(size=32, channels=1, num_classes=10, width_multiplier=0.25, fc_window=1,
                 fc_features=(256, 256))
  # Configuration A at a quarter width: convs 16-32-64-64-128-128-128-128, 3x3 with bias
  # (9 * c_in * c_out + c_out each) on a 1-channel 32 px input; five 2x2 pools leave 1x1,
  # so fc6 is 128 -> 256, fc7 256 -> 256, fc8 256 -> 10.
  widths = (1, 16, 32, 64, 64, 128, 128, 128, 128)
  convs = sum(9 * c_in * c_out + c_out for c_in, c_out in zip(widths, widths[1:]))
  assert convs == 160 + 4_640 + 18_496 + 36_928 + 73_856 + 3 * 147_584 == 576_832
  head = (128 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)
  assert head == 101_386
  assert_param_count("vgg11", convs + head, **setting)
  assert_param_count("vgg11_lrn", convs + head, **setting)  # LRN has no parameters
  assert convs + head == 678_218
  # Rounding, floor of 1, and the default keeping the paper's widths.
  params = _abstract_init(models.create("vgg11", width_multiplier=0.01, **SMALL_HEAD), 32)
  assert params["params"]["conv1"]["conv"]["kernel"].shape == (3, 3, 3, 1)
  assert params["params"]["conv8"]["conv"]["kernel"].shape == (3, 3, 5, 5)
  assert models.create("vgg11").width_multiplier == 1.0


@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_conv_split_path_matches_xla_grouped_conv(groups):
  """On CPU a conv with a few groups runs as one dense conv per group; values and
  gradients equal XLA's grouped convolution."""
  from jax import lax
  from cnn_jax.layers import Conv
  conv = Conv(16, 5, strides=2, padding=2, groups=groups, use_bias=False)
  x = jax.random.normal(jax.random.key(0), (2, 13, 13, 8))
  params = conv.init(jax.random.key(1), x)

  def reference(p, x):
    return lax.conv_general_dilated(x, p["params"]["kernel"], (2, 2), [(2, 2), (2, 2)],
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    feature_group_count=groups)

  np.testing.assert_allclose(conv.apply(params, x), reference(params, x), rtol=1e-5,
                             atol=1e-5)
  grads = [jax.grad(lambda p, x: jnp.sum(f(p, x) ** 2), argnums=(0, 1))(params, x)
           for f in (conv.apply, reference)]
  for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
