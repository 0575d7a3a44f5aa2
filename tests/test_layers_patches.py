"""The convolution as a product of patches (cnn_jax/layers/patches.py): XLA's values and
gradients, taken exactly where XLA would swap the operands, and where `Conv` takes it."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from cnn_jax.layers import Conv, patches
from model_testing import fast_jit

# (input side, kernel, strides, padding, dilation): maps smaller than the kernel, as the
# studies' small images leave them, and a few that are not.
CASES = [
    ((1, 1), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),  # DenseNet / ResNet at 32 px
    ((2, 2), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),  # VGG at 32 px
    ((2, 3), (3, 3), (1, 1), "SAME", (1, 1)),
    ((4, 4), (5, 5), (1, 1), ((2, 2), (2, 2)), (1, 1)),  # GoogLeNet's 5x5 on a 4x4 map
    ((3, 3), (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),  # strided: swapped in the gradient
    ((2, 2), (3, 3), (1, 1), ((0, 1), (1, 0)), (1, 1)),  # asymmetric
    ((2, 2), (3, 3), (1, 1), ((2, 2), (2, 2)), (2, 2)),  # dilated
    ((1, 2), (1, 3), (1, 1), "SAME", (1, 1)),  # Inception's factorised 1x3
    ((1, 3), (3, 5), (2, 2), ((2, 3), (2, 2)), (1, 1)),  # taps reading only padding
    ((3, 3), (3, 3), (1, 1), "VALID", (1, 1)),  # a plain contraction: not swapped
    ((5, 5), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),  # XLA's own case
]


def _ids(case):
  return f"{case[0][0]}x{case[0][1]}-k{case[1][0]}x{case[1][1]}-s{case[2][0]}-{case[3]}-d{case[4][0]}"


def _plain(x, kernel, strides, padding, dilation):
  return lax.conv_general_dilated(x, kernel, strides, padding, rhs_dilation=dilation,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("case", CASES, ids=_ids)
@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_patches_conv_has_xla_values_and_gradients(case, dtype):
  if dtype == "float64":
    with jax.enable_x64(True):
      _check(case, jnp.float64, tol=1e-12)
  else:
    _check(case, jnp.dtype(dtype), tol=1e-5 if dtype == "float32" else 5e-2)


def _check(case, dtype, tol):
  hw, kernel_size, strides, padding, dilation = case
  rng = np.random.default_rng(0)
  z = jnp.asarray(rng.standard_normal((3, *hw, 4)), dtype)
  kernel = jnp.asarray(rng.standard_normal((*kernel_size, 4, 6)), dtype)
  args = (strides, padding, dilation)

  def loss(conv):
    def f(z, kernel):
      y = conv(jnp.maximum(z * 1.5 - 0.2, 0), kernel, *args)
      return jnp.sum(jnp.sin(y.astype(jnp.float32))), y
    return f

  @fast_jit
  def both(z, kernel):
    ours = jax.value_and_grad(loss(patches.patches_conv), (0, 1), has_aux=True)
    plain = jax.value_and_grad(loss(_plain), (0, 1), has_aux=True)
    return ours(z, kernel), plain(z, kernel)

  ((value, y), grads), ((want_value, want_y), want_grads) = both(z, kernel)
  assert y.shape == want_y.shape and y.dtype == want_y.dtype == dtype
  np.testing.assert_allclose(value, want_value, rtol=tol, atol=tol)
  for got, want in zip((y, *grads), (want_y, *want_grads)):
    assert got.dtype == want.dtype == dtype and got.shape == want.shape
    scale = float(jnp.abs(want.astype(jnp.float32)).max())
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               rtol=tol, atol=tol * scale)


def _xla_swaps(case) -> bool:
  """Whether XLA's optimised program for the convolution and its gradients holds a
  swapped convolution (its output's batch dimension taken from the kernel's features)."""
  hw, kernel_size, strides, padding, dilation = case
  x, kernel = jnp.ones((2, *hw, 4)), jnp.ones((*kernel_size, 4, 6))
  f = jax.grad(lambda x, k: jnp.sum(_plain(x, k, strides, padding, dilation) ** 2), (0, 1))
  text = jax.jit(f).lower(x, kernel).compile().as_text()
  labels = re.findall(r"convolution\(.*?dim_labels=(\S+?),", text)
  assert labels, "no convolution left in the program"
  return any(not label.endswith("->b01f") and "->f" in label for label in labels)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_applies_exactly_where_xla_swaps_the_operands(case):
  hw, kernel_size, strides, padding, dilation = case
  assert jax.default_backend() == "cpu"
  with patches.custom_path(True):
    assert patches.applies((2, *hw, 4), kernel_size, strides, 1, dilation,
                           padding) == _xla_swaps(case)


def test_taps_that_read_only_padding_are_left_out():
  """On a 1x1 map a padded 3x3 convolution is its centre tap's product: one [N, 1, 1, C]
  slice, not nine."""
  x, kernel = jnp.ones((2, 1, 1, 4)), jnp.ones((3, 3, 4, 6))
  jaxpr = str(jax.make_jaxpr(
      lambda x, k: patches.patches_conv(x, k, (1, 1), ((1, 1), (1, 1))))(x, kernel))
  dots = [line for line in jaxpr.splitlines() if "dot_general" in line]
  assert len(dots) == 1 and "f32[2,1,1,6]" in dots[0]
  assert "f32[2,1,1,4]" in jaxpr and "f32[4,6]" in jaxpr  # the centre tap alone
  assert "f32[2,1,1,36]" not in jaxpr and "f32[36,6]" not in jaxpr


def test_conv_takes_the_patches_path_where_the_map_is_smaller_than_the_kernel(monkeypatch):
  def takes(conv, hw):
    x = jnp.ones((1, hw, hw, 4))
    variables = jax.eval_shape(conv.init, jax.random.key(0), x)
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda v: jnp.sum(conv.apply(v, x))))(variables))
    return "conv_general_dilated" not in jaxpr

  monkeypatch.delenv("CNN_JAX_PATCHES_CONV", raising=False)
  assert takes(Conv(6, 3), hw=2) and takes(Conv(6, 3), hw=1)
  assert takes(Conv(6, 5, padding="SAME"), hw=4)
  assert not takes(Conv(6, 3), hw=3)  # XLA's own convolution from 3x3 maps up
  assert not takes(Conv(6, 3, groups=2), hw=2)  # groups: split into XLA convolutions
  assert not takes(Conv(6, 1), hw=1)  # a squeeze-excite's or classifier's 1x1 map
  assert not takes(Conv(6, 7, padding=0), hw=7)  # VGG's fc6 on its 7x7 map
  with patches.custom_path(False):
    assert not takes(Conv(6, 3), hw=2)
  monkeypatch.setenv("CNN_JAX_PATCHES_CONV", "0")  # as the benchmark's plain path does
  assert not takes(Conv(6, 3), hw=2)
