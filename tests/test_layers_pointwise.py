"""The 1x1 convolution's custom kernel gradient (cnn_jax/layers/pointwise.py) against
jax.grad of XLA's own convolution, and where `Conv` takes it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from cnn_jax.layers import Conv, pointwise
from model_testing import fast_jit


def _xla_conv(x, kernel, strides):
  return lax.conv_general_dilated(x, kernel, strides, "VALID",
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


# Odd sizes make a stride of 2 drop the last row / column.
@pytest.mark.parametrize("hw", [(28, 29), (9, 10)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_pointwise_custom_vjp_matches_xla(hw, stride, dtype):
  if dtype == "float64":  # rounding-level agreement with the plain operation's jax.grad
    with jax.enable_x64(True):
      _check(hw, stride, jnp.float64, tol=1e-10)
  else:
    _check(hw, stride, jnp.dtype(dtype), tol=1e-5 if dtype == "float32" else 2e-2)


def _check(hw, stride, dtype, tol):
  strides = (stride, stride)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((3, *hw, 5)), dtype)
  kernel = jnp.asarray(rng.standard_normal((1, 1, 5, 7)), dtype)
  out_shape = jax.eval_shape(lambda a, b: _xla_conv(a, b, strides), x, kernel)
  cotangent = jnp.asarray(rng.standard_normal(out_shape.shape), dtype)

  @fast_jit
  def forward_and_grads(x, kernel):
    out, vjp = jax.vjp(lambda a, b: pointwise.pointwise_conv(a, b, strides), x, kernel)
    # The reference in float32 at least, so bfloat16 is compared with exact sums.
    ref = lambda a, b: _xla_conv(a.astype(jnp.promote_types(dtype, jnp.float32)),
                                 b.astype(jnp.promote_types(dtype, jnp.float32)), strides)
    want_out, want_vjp = jax.vjp(ref, x, kernel)
    return out, vjp(cotangent), want_out, want_vjp(cotangent.astype(want_out.dtype))

  out, (d_x, d_kernel), want_out, (want_d_x, want_d_kernel) = forward_and_grads(x, kernel)
  assert out.shape == want_out.shape == out_shape.shape
  assert out.dtype == d_x.dtype == d_kernel.dtype == dtype
  for got, want in ((out, want_out), (d_x, want_d_x), (d_kernel, want_d_kernel)):
    scale = float(jnp.abs(want).max())
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               rtol=tol, atol=tol * scale)


def test_conv_takes_the_pointwise_path_only_for_plain_1x1(monkeypatch):
  x = jnp.ones((1, 56, 56, 4))  # 56x56 and 28x28 (stride 2) output pixels

  def uses_it(conv):
    variables = jax.eval_shape(conv.init, jax.random.key(0), x)
    return "name=_pointwise" in str(jax.make_jaxpr(conv.apply)(variables, x))

  assert jax.default_backend() == "cpu"
  monkeypatch.delenv("CNN_JAX_POINTWISE_VJP", raising=False)
  assert uses_it(Conv(6, 1))
  assert uses_it(Conv(6, 1, strides=2))
  assert uses_it(Conv(6, 1, padding="SAME"))
  assert not uses_it(Conv(6, 3))
  assert not uses_it(Conv(6, 1, padding=1))  # padding: XLA's convolution
  assert not uses_it(Conv(6, 1, groups=2))
  assert not uses_it(Conv(6, 1, strides=3))  # 19x19 output pixels, under MIN_PIXELS
  with pointwise.custom_vjp(False):
    assert not uses_it(Conv(6, 1))
  assert uses_it(Conv(6, 1))
  monkeypatch.setenv("CNN_JAX_POINTWISE_VJP", "0")  # as the benchmark's plain path does
  assert not uses_it(Conv(6, 1))
