import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from cnn_jax import models
from cnn_jax.layers import Conv, depthwise, make_divisible
from cnn_jax.layers.mobile import stage_blocks
from cnn_jax.models import mobilenet as mobilenet_family
from cnn_jax.models import summary
from model_testing import (abstract_train_step, assert_param_count, fast_jit,
                           forward_and_train_step)

# torchvision's published counts; mobilenet_v1: timm at width 1.0, the other widths derived
# from Howard et al. 2017, Table 1 (docs/parameter_counts.md lists each with its source).
MOBILENET_PARAMS = {
    "mobilenet_v2": 3_504_872,
    "mobilenet_v3_large": 5_483_032,
    "mobilenet_v3_small": 2_542_856,
}
MOBILENET_V1_PARAMS = {1.0: 4_231_976, 0.75: 2_585_560, 0.5: 1_331_592, 0.25: 470_072}


@pytest.mark.parametrize("name,expected", sorted(MOBILENET_PARAMS.items()))
def test_mobilenet_param_counts(name, expected):
  assert_param_count(name, expected)


@pytest.mark.parametrize("width,expected", sorted(MOBILENET_V1_PARAMS.items()))
def test_mobilenet_v1_param_counts_per_width(width, expected):
  assert_param_count("mobilenet_v1", expected, width_multiplier=width)


def test_make_divisible_never_rounds_down_more_than_10_percent():
  assert make_divisible(32 * 0.75, 8) == 24
  assert make_divisible(18, 8) == 24  # 16 would lose 11%
  assert make_divisible(1280 * 1.1, 8) == 1408
  assert make_divisible(3, 8) == 8


def test_mobilenet_v2_macs_match_torchvision():
  assert abs(summary.count_macs("mobilenet_v2") / 1e9 - 0.30) < 0.005


# Compiled: the first rows of each table, which hold every kind of its blocks; each whole
# table is traced (test_mobilenet_traced_train_step_at_224), and the longer tables repeat
# these blocks at other widths. v1 and v2 read their tables from module constants (no
# model field), replaced for the test: v1's first two rows (separable blocks at strides 1
# and 2; the whole table compiled in 6-8 s on 2 cores, these in 2 s), v2's first two
# (inverted residuals with expansion 1 and 6, strides 1 and 2, with and without the
# shortcut, ReLU6, the 1280-wide head conv; 11-14 s whole, 3 s). v3-small's first five
# rows are its `layers` field (ReLU and hard-swish, with and without hard-sigmoid
# squeeze-excite, strides 1 and 2, 3x3 and 5x5, shortcuts after either activation; the
# whole table took 20 s); v3-large has the same blocks in a longer table.
FIRST_ROWS = {"mobilenet_v1": ("V1_STAGES", 2), "mobilenet_v2": ("V2_STAGES", 2)}


def first_rows(monkeypatch, name):
  """Shortens `name`'s layer table (a module constant) to its first rows for this test;
  returns them."""
  table, rows = FIRST_ROWS[name]
  monkeypatch.setattr(mobilenet_family, table, getattr(mobilenet_family, table)[:rows])
  return getattr(mobilenet_family, table)


@pytest.mark.parametrize("name,overrides", [
    ("mobilenet_v1", {}),
    pytest.param("mobilenet_v3_small", {"layers": mobilenet_family.V3_SMALL[:5]},
                 marks=pytest.mark.slow),
    ("mobilenet_v2", {}),
], ids=["mobilenet_v1_rows_1_to_2", "mobilenet_v3_small_rows_1_to_5",
        "mobilenet_v2_rows_1_to_2"])
def test_mobilenet_train_step(monkeypatch, name, overrides):
  model = models.create(name, num_classes=10, **overrides)
  if name in FIRST_ROWS:
    rows = first_rows(monkeypatch, name)
    params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
    assert len([k for k in params if k.startswith("block")]) == len(stage_blocks(rows))
  forward_and_train_step(model, size=32, num_classes=10)


def test_mobilenet_v2_first_rows_have_every_block_kind():
  """The blocks of v2's shortened table (test_mobilenet_train_step): expansion 1 and 6,
  strides 1 and 2, with and without a shortcut (stride 1, width unchanged)."""
  table = mobilenet_family.V2_STAGES
  rows = table[:FIRST_ROWS["mobilenet_v2"][1]]
  assert {r.expansion for r in rows} == {r.expansion for r in table} == {1, 6}
  blocks = stage_blocks(rows)
  widths = [32] + [r.features for r, _ in blocks]  # each block's input: the stem's 32, ...
  shortcut = [s == 1 and a == b for (_, s), a, b in zip(blocks, widths, widths[1:])]
  assert {s for _, s in blocks} == {1, 2} and any(shortcut) and not all(shortcut)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small",
                                  "mobilenet_v3_large"])
def test_mobilenet_traced_train_step_at_224(name):
  abstract_train_step(models.create(name), size=224, num_classes=1000)


def test_mobilenet_v1_relu6_and_any_resolution(monkeypatch):
  model = models.create("mobilenet_v1", num_classes=5, width_multiplier=0.25, act="relu6")
  x = jnp.full((1, 72, 72, 3), 10.0)
  # The whole table at 72 px, traced: the map sizes.
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
  logits, state = jax.eval_shape(
      functools.partial(model.apply, train=False, mutable=["intermediates"]), variables, x)
  assert logits.shape == (1, 5)
  assert state["intermediates"]["stem"][0].shape == (1, 36, 36, 8)
  assert state["intermediates"]["stage5"][0].shape == (1, 3, 3, 256)
  # The values, compiled on the first rows (the whole table: 4-5 s on 2 cores, these 1 s).
  first_rows(monkeypatch, "mobilenet_v1")
  variables = fast_jit(functools.partial(model.init, train=False))(jax.random.key(0), x)
  _, state = fast_jit(functools.partial(model.apply, train=False, mutable=["intermediates"]))(
      variables, x)
  assert float(jnp.max(state["intermediates"]["stem"][0])) <= 6.0  # ReLU6 caps activations
  with pytest.raises(ValueError, match="unknown activation"):
    jax.eval_shape(models.create("mobilenet_v1", act="gelu").init, jax.random.key(0), x)


# The CPU depthwise custom VJP (cnn_jax/layers/depthwise.py) against XLA's convolution.

def _xla_depthwise(x, kernel, strides, padding):
  return lax.conv_general_dilated(x, kernel, strides, padding,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  feature_group_count=x.shape[-1])


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel_size", [3, 5])
@pytest.mark.parametrize("padding", ["symmetric", "SAME", "VALID", "asymmetric"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_depthwise_custom_vjp_matches_xla(stride, kernel_size, padding, dtype):
  if dtype == "float64":  # rounding-level agreement with the plain operation's jax.grad
    with jax.enable_x64(True):
      _check_depthwise_vjp(stride, kernel_size, padding, jnp.float64, tol=1e-10)
  else:
    _check_depthwise_vjp(stride, kernel_size, padding, jnp.float32, tol=1e-5)


def _check_depthwise_vjp(stride, kernel_size, padding, dtype, tol):
  k, strides = kernel_size, (stride, stride)
  pads = {"symmetric": ((k // 2, k // 2), (k // 2, k // 2)),
          "asymmetric": ((0, k // 2), (k // 2 - 1, k // 2 + 1))}.get(padding, padding)
  # Inputs from numpy and both sides in one program, one compile per case (eager
  # jax.random and XLA's vjp compiled op by op: the 32 cases took 22 s on 2 cores, now 8 s).
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((2, 9, 10, 6)), dtype)  # odd and even sizes
  kernel = jnp.asarray(rng.standard_normal((k, k, 1, 6)), dtype)
  out_shape = jax.eval_shape(lambda a, b: _xla_depthwise(a, b, strides, pads), x, kernel)
  cotangent = jnp.asarray(rng.standard_normal(out_shape.shape), dtype)

  @fast_jit
  def forward_and_grads(x, kernel):
    out, vjp = jax.vjp(lambda a, b: depthwise.depthwise_conv(a, b, strides, pads), x, kernel)
    want_out, want_vjp = jax.vjp(lambda a, b: _xla_depthwise(a, b, strides, pads), x, kernel)
    # Under differentiation the forward pass is the shifted multiply-adds too.
    return (depthwise.depthwise_conv(x, kernel, strides, pads), out, vjp(cotangent),
            want_out, want_vjp(cotangent))

  primal, out, (d_x, d_kernel), want_out, (want_d_x, want_d_kernel) = forward_and_grads(
      x, kernel)
  assert d_x.dtype == d_kernel.dtype == dtype
  for got, want in ((primal, want_out), (out, want_out), (d_x, want_d_x),
                    (d_kernel, want_d_kernel)):
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_conv_takes_the_fast_path_only_for_depthwise(monkeypatch):
  x = jnp.ones((1, 8, 8, 4))

  def primitives(conv):
    variables = jax.eval_shape(conv.init, jax.random.key(0), x)
    return str(jax.make_jaxpr(conv.apply)(variables, x))

  assert jax.default_backend() == "cpu"
  with depthwise.custom_vjp(True):
    assert "name=_depthwise" in primitives(Conv(4, 3, groups=4))
    assert "name=_depthwise" not in primitives(Conv(4, 3, groups=2))
    assert "name=_depthwise" not in primitives(Conv(8, 3, groups=4))  # depth multiplier 2
    with depthwise.custom_vjp(False):
      assert "name=_depthwise" not in primitives(Conv(4, 3, groups=4))
    assert "name=_depthwise" in primitives(Conv(4, 3, groups=4))  # the outer choice is back
  # Outside any context the environment variable decides.
  monkeypatch.setenv("CNN_JAX_DEPTHWISE_VJP", "0")
  assert "name=_depthwise" not in primitives(Conv(4, 3, groups=4))
  monkeypatch.setenv("CNN_JAX_DEPTHWISE_VJP", "1")
  assert "name=_depthwise" in primitives(Conv(4, 3, groups=4))


def test_macs_are_counted_through_the_fast_path():
  with depthwise.custom_vjp(True):
    fast = summary.count_macs("mobilenet_v3_small", size=64)
  with depthwise.custom_vjp(False):
    assert summary.count_macs("mobilenet_v3_small", size=64) == fast
