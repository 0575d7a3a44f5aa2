import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from cnn_jax import models
from cnn_jax.layers import Conv, depthwise, make_divisible
from cnn_jax.models import mobilenet as mobilenet_family
from cnn_jax.models import summary
from model_testing import abstract_train_step, assert_param_count, forward_and_train_step

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


# Compiled: v1 (separable blocks), v2 (inverted residuals, ReLU6) and v3-small's first five
# rows (every kind of its blocks: ReLU and hard-swish, with and without hard-sigmoid
# squeeze-excite, strides 1 and 2, 3x3 and 5x5, a shortcut; the whole table took 20 s to
# compile on 2 cores). v3-large has the same blocks in a longer table; both v3 tables
# are traced whole below.
@pytest.mark.parametrize("name,overrides", [
    ("mobilenet_v1", {}),
    pytest.param("mobilenet_v3_small", {"layers": mobilenet_family.V3_SMALL[:5]},
                 marks=pytest.mark.slow),
    pytest.param("mobilenet_v2", {}, marks=pytest.mark.slow),
], ids=["mobilenet_v1", "mobilenet_v3_small_rows_1_to_5", "mobilenet_v2"])
def test_mobilenet_train_step(name, overrides):
  forward_and_train_step(models.create(name, num_classes=10, **overrides), size=32,
                         num_classes=10)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small",
                                  "mobilenet_v3_large"])
def test_mobilenet_traced_train_step_at_224(name):
  abstract_train_step(models.create(name), size=224, num_classes=1000)


def test_mobilenet_v1_relu6_and_any_resolution():
  model = models.create("mobilenet_v1", num_classes=5, width_multiplier=0.25, act="relu6")
  x = jnp.full((1, 72, 72, 3), 10.0)
  variables = jax.jit(lambda k: model.init(k, x, train=False))(jax.random.key(0))
  logits, state = jax.jit(lambda v: model.apply(v, x, train=False, mutable=["intermediates"]))(
      variables)
  assert logits.shape == (1, 5)
  inter = state["intermediates"]
  assert inter["stem"][0].shape == (1, 36, 36, 8)
  assert inter["stage5"][0].shape == (1, 3, 3, 256)
  assert float(jnp.max(inter["stem"][0])) <= 6.0  # ReLU6 caps activations
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
  keys = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(keys[0], (2, 9, 10, 6), dtype)  # odd and even sizes
  kernel = jax.random.normal(keys[1], (k, k, 1, 6), dtype)
  want_out = _xla_depthwise(x, kernel, strides, pads)
  cotangent = jax.random.normal(keys[2], want_out.shape, dtype)

  @jax.jit
  def forward_and_grads(x, kernel):
    out, vjp = jax.vjp(lambda a, b: depthwise.depthwise_conv(a, b, strides, pads), x, kernel)
    # Under differentiation the forward pass is the shifted multiply-adds too.
    return depthwise.depthwise_conv(x, kernel, strides, pads), out, vjp(cotangent)

  primal, out, (d_x, d_kernel) = forward_and_grads(x, kernel)
  _, want_vjp = jax.vjp(lambda a, b: _xla_depthwise(a, b, strides, pads), x, kernel)
  want_d_x, want_d_kernel = want_vjp(cotangent)
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
    assert "custom_vjp" in primitives(Conv(4, 3, groups=4))
    assert "custom_vjp" not in primitives(Conv(4, 3, groups=2))
    assert "custom_vjp" not in primitives(Conv(8, 3, groups=4))  # depth multiplier 2
    with depthwise.custom_vjp(False):
      assert "custom_vjp" not in primitives(Conv(4, 3, groups=4))
    assert "custom_vjp" in primitives(Conv(4, 3, groups=4))  # the outer choice is back
  # Outside any context the environment variable decides.
  monkeypatch.setenv("CNN_JAX_DEPTHWISE_VJP", "0")
  assert "custom_vjp" not in primitives(Conv(4, 3, groups=4))
  monkeypatch.setenv("CNN_JAX_DEPTHWISE_VJP", "1")
  assert "custom_vjp" in primitives(Conv(4, 3, groups=4))


def test_macs_are_counted_through_the_fast_path():
  with depthwise.custom_vjp(True):
    fast = summary.count_macs("mobilenet_v3_small", size=64)
  with depthwise.custom_vjp(False):
    assert summary.count_macs("mobilenet_v3_small", size=64) == fast
