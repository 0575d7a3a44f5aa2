"""Model fields that switch a paper's design choice off for its ablation study.

Each field's default is the paper's network, so every registered count is unchanged; the
other value's count is derived here from the paper's tables or from the parameter tree,
and a small network with it runs forward and backward.

  ClassicNet.act                'relu' | 'tanh'   AlexNet Section 3.1, Fig. 1
  Inception.norm                BN on / off       Ioffe & Szegedy 2015, Section 4.2.2
  Inception.head                'gap' | 'fc'      Szegedy et al. 2014, Section 5
  MobileNetV2.linear_bottleneck / residual        Sandler et al. 2018, Fig. 6
  MobileNetV1.separable                           Howard et al. 2017, Table 4
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import models
from cnn_jax.layers import InvertedResidual
from cnn_jax.layers.mobile import stage_blocks
from cnn_jax.layers.inception import bn_inception_module, googlenet_module
from cnn_jax.layers.steps import conv, max_pool_step
from cnn_jax.models import classic as classic_family
from cnn_jax.models import inception as inception_family
from cnn_jax.models import mobilenet as mobilenet_family
from cnn_jax.models import summary
from model_testing import fast_jit, forward_and_train_step
from test_models_classic import CLASSIC_PARAMS
from test_models_inception import INCEPTION_PARAMS, INCEPTION_V2_PARAMS
from test_models_mobilenet import MOBILENET_PARAMS, MOBILENET_V1_PARAMS, first_rows


def _params(name, size=None, **overrides):
  """Abstract `params` of a registered model (aux heads off, as count_params counts)."""
  if "aux_logits" in models.overridable_fields(name):
    overrides = {"aux_logits": False, **overrides}
  model = models.create(name, **overrides)
  return summary.abstract_variables(model, size or models.spec(name).input_size)["params"]


def _size(tree) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def _paths(tree) -> dict:
  return {tuple(k.key for k in path): leaf.shape
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


# ---------------------------------------------------------------------------------------
# ClassicNet.act: ReLU vs tanh (Krizhevsky et al. 2012, Section 3.1, Fig. 1).

@pytest.mark.parametrize("name", ["alexnet", "zfnet", "vgg11_bn"])
def test_classic_act_keeps_counts(name):
  """An activation has no parameters: relu (the default) and tanh give the registered count."""
  assert summary.count_params(name) == CLASSIC_PARAMS[name]
  assert summary.count_params(name, act="relu") == CLASSIC_PARAMS[name]
  assert summary.count_params(name, act="tanh") == CLASSIC_PARAMS[name]


def _small_alexnet(**overrides):
  """AlexNet's layer list with every conv 8 wide, 8-wide FC layers over a 1x1 last map
  (67 px input), as tests/test_models_classic.py shrinks it. Glorot init: the paper's
  initial biases of 1 would keep tanh's inputs positive at initialisation."""
  layers = tuple(dataclasses.replace(l, features=8)
                 if isinstance(l, classic_family.ConvSpec) else l
                 for l in models.create("alexnet").layers)
  return models.create("alexnet", num_classes=8, layers=layers, fc_window=1,
                       fc_features=(8, 8), weight_init="glorot", **overrides)


def test_alexnet_tanh_is_applied_after_convs_and_fc_layers():
  x = jax.random.normal(jax.random.key(0), (2, 67, 67, 3))
  outputs = {}
  for act in ("relu", "tanh"):
    model = _small_alexnet(act=act)
    variables = fast_jit(functools.partial(model.init, train=False))(jax.random.key(1), x)
    apply = fast_jit(functools.partial(model.apply, train=False, capture_intermediates=True,
                                       mutable=["intermediates"]))
    _, state = apply(variables, x)
    inter = state["intermediates"]
    outputs[act] = [np.asarray(inter[f"conv{i}"]["__call__"][0]) for i in range(1, 6)]
    outputs[act].append(np.asarray(inter["head"]["pre_logits"][0]))  # after fc7's act
  for relu, tanh in zip(outputs["relu"], outputs["tanh"]):
    assert relu.min() >= 0.0
    assert tanh.min() < 0.0 and np.abs(tanh).max() <= 1.0


def test_alexnet_tanh_trains():
  loss0, loss1 = forward_and_train_step(_small_alexnet(act="tanh"), size=67, num_classes=8)
  assert loss1 != loss0


def test_classic_act_rejects_unknown_name():
  with pytest.raises(ValueError, match="unknown activation"):
    _params("alexnet", act="sigmoid_ish")


# ---------------------------------------------------------------------------------------
# Inception.norm: BatchNorm on / off (Ioffe & Szegedy 2015). The default is each paper's:
# off for GoogLeNet, on for every later version.

@pytest.mark.parametrize("name,norm,expected", [
    ("googlenet", False, INCEPTION_PARAMS["googlenet"]),
    ("inception_v2", True, INCEPTION_V2_PARAMS),
    ("inception_v3", True, INCEPTION_PARAMS["inception_v3"]),
    ("inception_v4", True, INCEPTION_PARAMS["inception_v4"]),
])
def test_inception_norm_default_is_the_papers(name, norm, expected):
  assert models.create(name).norm is norm
  assert summary.count_params(name) == expected
  assert summary.count_params(name, norm=norm) == expected


@pytest.mark.parametrize("name", ["googlenet", "inception_v2", "inception_v3"])
def test_inception_norm_off_swaps_bn_for_conv_biases(name):
  """Without BN every normalised conv loses BN's scale and bias (2C) and gains a conv
  bias (C); nothing else changes. The expectation is read off the BN-on tree."""
  on, off = _params(name, norm=True), _params(name, norm=False)
  on_paths, off_paths = _paths(on), _paths(off)
  norm_paths = {p: s for p, s in on_paths.items() if "norm" in p}
  # ConvNormAct's BN lives at <conv block>/norm/bn/{scale,bias}, its conv at <block>/conv.
  blocks = {p[:p.index("norm")]: s for p, s in norm_paths.items() if p[-1] == "scale"}
  expected_paths = {p: s for p, s in on_paths.items() if p not in norm_paths}
  expected_paths.update({block + ("conv", "bias"): s for block, s in blocks.items()})
  assert off_paths == expected_paths
  removed = sum(math.prod(s) for s in norm_paths.values())  # 2C per block
  added = sum(math.prod(s) for s in blocks.values())        # C per block
  assert _size(off) == _size(on) - removed + added
  no_bn = summary.abstract_variables(
      models.create(name, norm=False, aux_logits=False), models.spec(name).input_size)
  assert "batch_stats" not in no_bn


def test_inception_norm_counts_from_the_papers_tables():
  """BN on - BN off = one channel per normalised conv = the sum of the conv widths.

  GoogLeNet (Table 1): the stem's 64 + 64 + 192 plus every module's six widths.
  BN-Inception (Figure 5, TF-slim widths): the same stem, each stride-1 module's
  #1x1 + #3x3 reduce + #3x3 + double reduce + 2 x double #3x3 + pool proj, each
  stride-2 module's the same without the 1x1 and the projection.
  """
  stem = 64 + 64 + 192
  googlenet = stem + sum(map(sum, inception_family.GOOGLENET_MODULES.values()))
  assert googlenet == 7_280
  assert (summary.count_params("googlenet", norm=True)
          == INCEPTION_PARAMS["googlenet"] + googlenet == 7_005_832)
  v2 = stem + sum(n1 + r3 + n3 + dr + 2 * d3 + proj
                  for n1, r3, n3, dr, d3, _, proj in inception_family.INCEPTION_V2_MODULES.values())
  assert v2 == 9_952
  assert summary.count_params("inception_v2", norm=False) == INCEPTION_V2_PARAMS - v2 == 11_178_336


# ---------------------------------------------------------------------------------------
# Inception.head: global average pooling vs a fully connected classifier on the last map
# (Szegedy et al. 2014, Section 5).

def test_googlenet_fc_head_count():
  """At 224 the last map is 7x7x1024: the FC layer reads 49x as many inputs; the bias
  (num_classes) is the same, so the difference is (7*7*1024 - 1024) * num_classes."""
  assert summary.count_params("googlenet", head="gap") == INCEPTION_PARAMS["googlenet"]
  for num_classes in (1000, 10):
    gap = summary.count_params("googlenet", num_classes=num_classes)
    fc = summary.count_params("googlenet", num_classes=num_classes, head="fc")
    assert fc - gap == 7 * 7 * 1024 * num_classes - 1024 * num_classes
  assert summary.count_params("googlenet", head="fc") == 56_150_552
  assert _params("googlenet", head="fc")["head"]["fc"]["kernel"].shape == (7 * 7 * 1024, 1000)
  # The FC layer follows the map: at 64 px the last map is 2x2.
  assert _params("googlenet", 64, head="fc")["head"]["fc"]["kernel"].shape == (2 * 2 * 1024, 1000)


def test_inception_head_rejects_unknown_name():
  with pytest.raises(ValueError, match="unknown head"):
    _params("googlenet", head="dense")


# A small layout with both kinds of module, for compiled forward and backward passes in
# seconds; the registered models keep their own fields (GoogLeNet: no BN, dropout 0.4).
TINY_LAYOUT = (
    ("stem", (("conv1", conv(8, 3, 2)), ("pool1", max_pool_step(3, 2, ceil_mode=True)))),
    ("stage1", (("inception_a", googlenet_module(4, 4, 8, 2, 4, 4)),
                ("inception_b", bn_inception_module(0, 4, 8, 4, 8, "max", 0, stride=2)),
                ("inception_c", bn_inception_module(4, 4, 4, 4, 4, "avg", 4)))),
)


@pytest.mark.parametrize("name,overrides", [
    ("googlenet", dict(head="fc")),
    ("googlenet", dict(head="fc", norm=True)),
    ("inception_v2", dict(norm=False)),
    ("inception_v2", dict(norm=False, head="fc")),
])
def test_inception_ablations_train(name, overrides):
  model = models.create(name, num_classes=10, layout=TINY_LAYOUT, aux_logits=False,
                        **overrides)
  loss0, loss1 = forward_and_train_step(model, size=32, num_classes=10)
  assert loss1 != loss0


@pytest.mark.parametrize("name,size,overrides", [
    ("googlenet", 64, dict(head="fc")),
    ("inception_v2", 32, dict(norm=False)),
])
def test_inception_ablations_full_layout_shapes(name, size, overrides):
  """The whole registered network with the new value, shapes only (no compilation)."""
  model = models.create(name, num_classes=10, aux_logits=False, **overrides)
  x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
  logits = jax.eval_shape(
      lambda x: model.apply(model.init(jax.random.key(0), x, train=False), x, train=False), x)
  assert logits.shape == (2, 10)


# ---------------------------------------------------------------------------------------
# MobileNet v2: linear bottlenecks and shortcuts (Sandler et al. 2018, Fig. 6).

@pytest.mark.parametrize("overrides", [
    {}, dict(linear_bottleneck=True, residual=True), dict(linear_bottleneck=False),
    dict(residual=False), dict(linear_bottleneck=False, residual=False)])
def test_mobilenet_v2_ablations_keep_params(overrides):
  """Neither a ReLU6 nor a shortcut has parameters: every combination has the registered
  tree, shape for shape."""
  assert summary.count_params("mobilenet_v2", **overrides) == MOBILENET_PARAMS["mobilenet_v2"]
  assert _paths(_params("mobilenet_v2", **overrides)) == _paths(_params("mobilenet_v2"))


def test_inverted_residual_ablation_semantics():
  """residual=False removes exactly `+ x`; project_act puts ReLU6 on the projection."""
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 8)) * 3.0
  block = functools.partial(InvertedResidual, 8, 48, strides=1)  # 8 -> 48 -> 8, shortcut
  variables = block().init(jax.random.key(1), x, train=False)
  y = block().apply(variables, x, train=False)
  branch = block(residual=False).apply(variables, x, train=False)
  np.testing.assert_allclose(y, branch + x, rtol=1e-5, atol=1e-5)
  assert float(branch.min()) < 0.0  # linear bottleneck: the projection keeps its sign
  z = block(residual=False, project_act=jax.nn.relu6).apply(variables, x, train=False)
  np.testing.assert_allclose(z, jax.nn.relu6(branch), rtol=1e-5, atol=1e-5)


def test_mobilenet_v2_ablation_forward(monkeypatch):
  """Compiled on the first rows of v2's table (blocks with and without a shortcut:
  test_models_mobilenet.first_rows; the whole table took 4 s on 2 cores); the whole
  network with both ablations is traced (test_mobilenet_v2_ablations_keep_params)."""
  model = models.create("mobilenet_v2", num_classes=10, width_multiplier=0.25,
                        linear_bottleneck=False, residual=False)
  first_rows(monkeypatch, "mobilenet_v2")
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  variables = fast_jit(functools.partial(model.init, train=False))(jax.random.key(1), x)
  logits, state = fast_jit(functools.partial(model.apply, train=False,
                                             mutable=["intermediates"]))(variables, x)
  assert logits.shape == (2, 10) and np.all(np.isfinite(np.asarray(logits)))
  # Without shortcuts, every block ends in ReLU6: the stage outputs lie in [0, 6].
  for stage in ("stage1", "stage2"):  # the first rows' last blocks at strides 2 and 4
    out = np.asarray(state["intermediates"][stage][0])
    assert out.min() >= 0.0 and out.max() <= 6.0, stage
  assert "stage3" not in state["intermediates"]  # the shortened table ran


# ---------------------------------------------------------------------------------------
# MobileNet v1 with full convolutions: "Conv MobileNet" (Howard et al. 2017, Table 4).

def test_mobilenet_v1_separable_default_keeps_counts():
  for width, expected in MOBILENET_V1_PARAMS.items():
    assert summary.count_params("mobilenet_v1", width_multiplier=width,
                                separable=True) == expected
  assert summary.count_params("mobilenet_v1") == MOBILENET_V1_PARAMS[1.0]


def test_conv_mobilenet_params_and_macs_match_table_4():
  """Table 4: 29.3M parameters and 4866M mult-adds (MobileNet: 4.2M and 569M).

  Stem 3x3x3x32 conv + BN (2 x 32); each of Table 1's 13 layers a 3x3 conv from c_in to
  c_out + BN (2 x c_out); the FC 1024 x 1000 + 1000: 29,294,088, 0.02% under the
  paper's 29.3M, which is that number rounded. Mult-adds: the convs alone come to
  4,866.3M, the paper's 4866M; count_macs also counts the FC layer's 1.024M.
  """
  layers = [(row.features, stride)  # Table 1's 13 layers as (output channels, stride)
            for row, stride in stage_blocks(mobilenet_family.V1_STAGES)]
  widths = [32] + [c for c, _ in layers]
  stem = 3 * 3 * 3 * 32 + 2 * 32
  convs = sum(3 * 3 * c_in * c_out + 2 * c_out for c_in, c_out in zip(widths, widths[1:]))
  classifier = 1024 * 1000 + 1000
  params = summary.count_params("mobilenet_v1", separable=False)
  assert params == stem + convs + classifier == 29_294_088
  assert abs(params / 29.3e6 - 1) < 0.01

  # Output sides at 224: the stem's 112, then halved at every stride-2 layer.
  side, conv_macs = 112, 112 * 112 * 3 * 3 * 3 * 32
  for (c_in, c_out), (_, stride) in zip(zip(widths, widths[1:]), layers):
    side //= stride
    conv_macs += side * side * 3 * 3 * c_in * c_out
  macs = summary.count_macs("mobilenet_v1", separable=False)
  assert macs == conv_macs + 1024 * 1000 == 4_867_293_184
  assert conv_macs // 10**6 == 4866
  assert abs(macs / 4866e6 - 1) < 0.01


def test_conv_mobilenet_layers_are_full_3x3_convs():
  params = _params("mobilenet_v1", separable=False)
  assert params["block2"]["conv"]["kernel"].shape == (3, 3, 64, 128)
  assert params["block13"]["conv"]["kernel"].shape == (3, 3, 1024, 1024)
  assert not any("depthwise" in p or "pointwise" in p for p in _paths(params))
  # The stride is the depthwise conv's: 224 -> 112 (stem) -> ... -> 7.
  model = models.create("mobilenet_v1", separable=False)
  state = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((1, 224, 224, 3)),
                                               mutable=["intermediates"])[1],
                         summary.abstract_variables(model, 224))
  assert state["intermediates"]["stage5"][0].shape == (1, 7, 7, 1024)


def test_conv_mobilenet_trains():
  model = models.create("mobilenet_v1", num_classes=10, width_multiplier=0.25,
                        separable=False)
  loss0, loss1 = forward_and_train_step(model, size=32, num_classes=10)
  assert loss1 != loss0
