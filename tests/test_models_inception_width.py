"""Inception.width_multiplier: every conv width of a layout (and of its aux heads) scaled
for the CPU-scale studies; 1.0 is the paper's network, so every registered count holds."""

import math

import jax
import jax.numpy as jnp
import pytest

from cnn_jax import models
from cnn_jax.layers.inception import AuxSpec
from cnn_jax.layers.steps import (ConvSpec, ResidualSpec, conv, scaled_width,
                                  with_width_multiplier)
from cnn_jax.models import inception as inception_family
from cnn_jax.models import summary
from test_models_inception import INCEPTION_PARAMS, INCEPTION_V2_PARAMS

REGISTERED = {**INCEPTION_PARAMS, "inception_v2": INCEPTION_V2_PARAMS}


def _params(name, size=None, **overrides):
  model = models.create(name, **overrides)
  return summary.abstract_variables(model, size or models.spec(name).input_size)["params"]


@pytest.mark.parametrize("name,expected", sorted(REGISTERED.items()))
def test_default_width_keeps_registered_counts(name, expected):
  assert models.create(name).width_multiplier == 1.0
  assert summary.count_params(name, width_multiplier=1.0) == expected


@pytest.mark.parametrize("name", ["googlenet", "inception_v2", "inception_v3"])
@pytest.mark.parametrize("m", [0.5, 0.25])
def test_scaled_count_falls_as_m_squared(name, m):
  """Weights are cin x cout, so they fall as m^2; biases, BN and the classifier (10
  classes here, so it is negligible) fall as m, which lifts the ratio a little."""
  size = models.spec(name).min_input_size if name != "googlenet" else 64
  full = summary.count_params(name, size, num_classes=10)
  scaled = summary.count_params(name, size, num_classes=10, width_multiplier=m)
  assert m * m <= scaled / full < 1.1 * m * m


def _googlenet_count(m: float, num_classes: int, in_channels: int = 3) -> int:
  """GoogLeNet's parameters from Table 1 with every width x m (no BN: conv + bias)."""
  w = lambda c: max(1, round(c * m))                   # noqa: E731
  convp = lambda k, cin, cout: k * k * cin * cout + cout  # noqa: E731
  total = convp(7, in_channels, w(64)) + convp(1, w(64), w(64)) + convp(3, w(64), w(192))
  cin = w(192)
  for n1, r3, n3, r5, n5, proj in inception_family.GOOGLENET_MODULES.values():
    n1, r3, n3, r5, n5, proj = map(w, (n1, r3, n3, r5, n5, proj))
    total += (convp(1, cin, n1) + convp(1, cin, r3) + convp(3, r3, n3) + convp(1, cin, r5)
              + convp(5, r5, n5) + convp(1, cin, proj))
    cin = n1 + n3 + n5 + proj
  return total + cin * num_classes + num_classes


def test_googlenet_half_width_count_from_table1():
  assert _googlenet_count(1.0, 1000) == INCEPTION_PARAMS["googlenet"]
  expected = _googlenet_count(0.5, 10)
  assert summary.count_params("googlenet", num_classes=10, width_multiplier=0.5) == expected
  assert expected == 1_502_690
  # Odd products round: 0.3 x 96 = 28.8 -> 29, 0.3 x 16 = 4.8 -> 5.
  assert (summary.count_params("googlenet", num_classes=10, width_multiplier=0.3)
          == _googlenet_count(0.3, 10))


def test_aux_heads_are_scaled_but_not_the_classes():
  params = _params("googlenet", 64, num_classes=10, width_multiplier=0.5, aux_logits=True)
  aux = params["aux_head1"]
  assert aux["conv0"]["conv"]["kernel"].shape == (1, 1, 256, 64)  # 4a: 512 -> 256 wide
  assert aux["fc1"]["kernel"].shape == (4 * 4 * 64, 512)
  assert aux["fc"]["kernel"].shape == (512, 10)
  assert params["head"]["fc"]["kernel"].shape == (512, 10)      # 1024 x 0.5
  v3 = _params("inception_v3", 75, num_classes=10, width_multiplier=0.25, aux_logits=True)
  assert v3["aux_head1"]["conv1"]["conv"]["kernel"].shape == (5, 5, 32, 192)
  assert v3["aux_head1"]["fc"]["kernel"].shape == (192, 10)


def test_spec_scaling_rules():
  assert scaled_width(3, 0.1) == 1 and scaled_width(96, 0.3) == 29
  depthwise = ConvSpec(kernel=7, stride=2, depth_multiplier=8)
  assert with_width_multiplier(depthwise, 0.25) == depthwise
  block = ResidualSpec(((conv(32),), (conv(32), conv(48, 3))), 0.17)
  scaled = with_width_multiplier(block, 0.5)
  assert [[s.features for s in b] for b in scaled.branches] == [[16], [16, 24]]
  assert scaled.scale == 0.17
  aux = AuxSpec(grid=4, convs=(conv(128),), hidden=1024).scaled(0.25)
  assert aux.convs[0].features == 32 and aux.hidden == 256
  assert with_width_multiplier(block, 1.0) is block


@pytest.mark.parametrize("name", ["inception_resnet_v1", "inception_resnet_v2"])
def test_scaled_residual_blocks_add_matching_shapes(name):
  """The projection of an Inception-ResNet block is built to its input's width, so a
  scaled network still adds x + scale * proj(branches(x)) with matching shapes."""
  model = models.create(name, num_classes=10, width_multiplier=0.25)
  x = jax.ShapeDtypeStruct((2, 75, 75, 1), jnp.float32)

  # One trace gives the logits and the scaled tree (traced apart, with the scaled count
  # traced a third time, this test took 2.2-4.3 s on 2 cores; now 1.6-2.9 s).
  def init_and_apply(x):
    variables = model.init(jax.random.key(0), x, train=False)
    return variables["params"], model.apply(variables, x, train=False)

  params, logits = jax.eval_shape(init_and_apply, x)
  assert logits.shape == (2, 10)
  proj = params["inception_resnet_a1"]["proj"]["kernel"]
  assert proj.shape[-1] == (64 if name == "inception_resnet_v1" else 80)  # 256 / 320 x 0.25
  scaled = sum(math.prod(p.shape) for p in jax.tree.leaves(params))
  assert scaled * 10 < summary.count_params(name, 75, num_classes=10, channels=1)


def test_width_multiplier_must_be_positive():
  with pytest.raises(ValueError, match="width_multiplier must be positive"):
    _params("googlenet", 64, width_multiplier=0.0)


def test_scaled_network_is_the_full_tree_with_narrower_leaves():
  """Scaling changes widths only: the same parameter paths, no layer dropped."""
  paths = lambda tree: {tuple(k.key for k in p) for p, _ in  # noqa: E731
                        jax.tree_util.tree_leaves_with_path(tree)}
  full = _params("inception_v3", 75, num_classes=10, aux_logits=True)
  scaled = _params("inception_v3", 75, num_classes=10, aux_logits=True, width_multiplier=0.25)
  assert paths(full) == paths(scaled)
  assert math.prod(scaled["conv_1a"]["conv"]["kernel"].shape) == 3 * 3 * 3 * 8
