"""The fenced convolution (cnn_jax/layers/fence.py): XLA's own gradients, the fence kept in
the compiled program, and where `Conv` takes it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from cnn_jax.layers import Conv, fence
from model_testing import fast_jit

# (kernel, strides, padding, dilation, groups): the kinds of convolution the zoo has.
CASES = [
    ((3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
    ((3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), 1),  # odd input: the last row is dropped
    ((7, 7), (2, 2), ((3, 3), (3, 3)), (1, 1), 1),  # ResNet's stem
    ((1, 1), (2, 2), "VALID", (1, 1), 1),  # a projection shortcut
    ((1, 3), (1, 1), "SAME", (1, 1), 1),  # Inception's factorised 1x3
    ((3, 3), (1, 1), ((0, 1), (1, 0)), (1, 1), 1),  # asymmetric (TF "SAME" at stride 2)
    ((3, 3), (1, 1), ((2, 2), (2, 2)), (2, 2), 1),  # dilated
    ((3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 2),  # grouped
]


def _plain(x, kernel, strides, padding, dilation, groups):
  return lax.conv_general_dilated(x, kernel, strides, padding, rhs_dilation=dilation,
                                  feature_group_count=groups,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"{c[0]}-s{c[1][0]}-{c[2]}-d{c[3][0]}-g{c[4]}")
@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_fenced_conv_has_xla_gradients(case, dtype):
  if dtype == "float64":
    with jax.enable_x64(True):
      _check(case, jnp.float64, tol=1e-12)
  else:
    _check(case, jnp.dtype(dtype), tol=1e-6 if dtype == "float32" else 1e-2)


def _check(case, dtype, tol):
  kernel_size, strides, padding, dilation, groups = case
  rng = np.random.default_rng(0)
  # A producer in front (scale, shift, ReLU), as in a network: what XLA would fuse.
  z = jnp.asarray(rng.standard_normal((3, 11, 10, 4)), dtype)
  kernel = jnp.asarray(rng.standard_normal((*kernel_size, 4 // groups, 6)), dtype)
  args = (strides, padding, dilation, groups)

  def loss(conv):
    def f(z, kernel):
      y = conv(jnp.maximum(z * 1.5 - 0.2, 0), kernel, *args)
      return jnp.sum(jnp.sin(y.astype(jnp.float32)))
    return f

  @fast_jit
  def both(z, kernel):
    fenced = jax.value_and_grad(loss(lambda *a: fence.conv(*a, fenced=True)), (0, 1))
    plain = jax.value_and_grad(loss(_plain), (0, 1))
    return fenced(z, kernel), plain(z, kernel)

  (value, grads), (want_value, want_grads) = both(z, kernel)
  np.testing.assert_allclose(value, want_value, rtol=tol)
  for got, want in zip(grads, want_grads):
    assert got.dtype == want.dtype == dtype and got.shape == want.shape
    scale = float(jnp.abs(want.astype(jnp.float32)).max())
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               rtol=tol, atol=tol * scale)


def test_the_fence_stays_in_the_compiled_program():
  """XLA must not fold the always-true predicate: without the conditional in the
  optimised program the fence is gone (and the speed with it)."""
  x = jnp.ones((2, 8, 8, 3))
  kernel = jnp.ones((3, 3, 3, 4))

  def grad_text(fenced):
    f = jax.grad(lambda k: jnp.sum(
        fence.conv(jnp.maximum(x, 0), k, (1, 1), "SAME", fenced=fenced) ** 2))
    return jax.jit(f).lower(kernel).compile().as_text()

  assert "conditional(" in grad_text(True)
  assert "conditional(" not in grad_text(False)


@pytest.mark.parametrize("token", [0.0, -3.0, float("nan"), float("inf")])
def test_materialize_returns_its_input_for_any_token(token):
  tree = {"a": jnp.arange(6.0).reshape(2, 3), "b": jnp.array([1, 2], jnp.int32)}
  out = jax.jit(fence.materialize)(tree, jnp.float32(token))
  assert jax.tree.all(jax.tree.map(lambda u, v: bool(jnp.array_equal(u, v)), out, tree))


def test_conv_takes_the_fenced_path_for_the_convolutions_xla_computes(monkeypatch):
  def fenced(conv, hw=14):
    x = jnp.ones((1, hw, hw, 4))
    variables = jax.eval_shape(conv.init, jax.random.key(0), x)
    jaxpr = str(jax.make_jaxpr(jax.grad(
        lambda v: jnp.sum(conv.apply(v, x))))(variables))
    return "cond" in jaxpr

  assert jax.default_backend() == "cpu"
  monkeypatch.delenv("CNN_JAX_FENCED_VJP", raising=False)
  assert fenced(Conv(6, 3))
  assert fenced(Conv(6, 3, strides=2))
  assert fenced(Conv(6, 1))  # 14x14 pixels: under pointwise.MIN_PIXELS
  assert fenced(Conv(6, 3, groups=2))  # split into two dense convolutions
  assert not fenced(Conv(4, 3, groups=4))  # depthwise: depthwise.py
  assert not fenced(Conv(6, 1), hw=1)  # a squeeze-excite's 1x1 map
  assert not fenced(Conv(6, 1), hw=56)  # 1x1 from 28x28 pixels: pointwise.py
  with fence.custom_vjp(False):
    assert not fenced(Conv(6, 3))
  assert fenced(Conv(6, 3))
  monkeypatch.setenv("CNN_JAX_FENCED_VJP", "0")  # as the benchmark's plain path does
  assert not fenced(Conv(6, 3))
