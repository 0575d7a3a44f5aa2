"""A depthwise convolution whose gradient does only the work it needs, for the CPU backend.

XLA on CPU differentiates a depthwise convolution (feature_group_count == channels) into
grouped convolutions that do roughly kernel-area-times-channels more work than needed
(~96x measured in the brief), which made MobileNet training on CPU slow. Here the
backward pass is written as kh*kw shifted multiply-adds: for each tap (i, j) of the
kernel,

  d kernel[i, j, c] = sum_{n, y, x} g[n, y, x, c] * x_pad[n, i + s*y, j + s*x, c]
  d x_pad[n, i + s*y, j + s*x, c] += g[n, y, x, c] * kernel[i, j, c]

which is exactly the forward pass's multiply-add count. The forward pass stays
`lax.conv_general_dilated` (fast on CPU, and what the MAC counter in models/summary.py
reads). `Conv` takes this path only on the CPU backend, for depthwise convolutions
(groups == in == out channels) without dilation; elsewhere XLA's own gradient is used.

Switch it off with the environment variable CNN_JAX_DEPTHWISE_VJP=0 or by setting
`cnn_jax.layers.depthwise.ENABLED = False` before tracing (experiments/bench_depthwise.py
compares both).
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

ENABLED = os.environ.get("CNN_JAX_DEPTHWISE_VJP", "1") != "0"

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def applies(groups: int, in_features: int, out_features: int,
            dilation: Sequence[int] = (1, 1)) -> bool:
  """Whether `Conv` should use `depthwise_conv` (read at trace time)."""
  return (ENABLED and jax.default_backend() == "cpu" and groups == in_features == out_features
          and tuple(dilation) == (1, 1))


def _explicit_padding(padding, in_hw, kernel_hw, strides):
  if isinstance(padding, str):
    return tuple(tuple(p) for p in lax.padtype_to_pads(in_hw, kernel_hw, strides, padding))
  return tuple(tuple(int(v) for v in p) for p in padding)


def depthwise_conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                   padding) -> jax.Array:
  """NHWC depthwise convolution, kernel [kh, kw, 1, C]; same result as
  `lax.conv_general_dilated(..., feature_group_count=C)`. `padding` is 'SAME' / 'VALID'
  or ((top, bottom), (left, right))."""
  if kernel.shape[2] != 1 or kernel.shape[3] != x.shape[-1]:
    raise ValueError(f"depthwise_conv: kernel {kernel.shape} does not match input {x.shape}")
  strides = tuple(int(s) for s in strides)
  pads = _explicit_padding(padding, x.shape[1:3], kernel.shape[:2], strides)
  return _depthwise(x, kernel, strides, pads)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise(x, kernel, strides, pads):
  return lax.conv_general_dilated(x, kernel, strides, pads,
                                  dimension_numbers=_DIMENSION_NUMBERS,
                                  feature_group_count=x.shape[-1])


def _depthwise_fwd(x, kernel, strides, pads):
  return _depthwise(x, kernel, strides, pads), (x, kernel)


def _depthwise_bwd(strides, pads, residuals, g):
  x, kernel = residuals
  n, h, w, c = x.shape
  kh, kw = kernel.shape[:2]
  sh, sw = strides
  (pt, pb), (pl, pr) = pads
  _, ho, wo, _ = g.shape
  hp, wp = h + pt + pb, w + pl + pr
  # Extent of the padded input that one tap touches: its top-left corner plus a
  # stride-spaced grid of ho x wo positions.
  span_h, span_w = (ho - 1) * sh + 1, (wo - 1) * sw + 1
  x_pad = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  g32 = g.astype(jnp.float32)
  d_kernel, d_x_pad = [], jnp.zeros((n, hp, wp, c), jnp.float32)
  for i in range(kh):
    for j in range(kw):
      window = lax.slice(x_pad, (0, i, j, 0), (n, i + span_h, j + span_w, c), (1, sh, sw, 1))
      d_kernel.append(jnp.sum(window.astype(jnp.float32) * g32, axis=(0, 1, 2)))
      tap = g32 * kernel[i, j, 0].astype(jnp.float32)
      # Place g (dilated by the stride) back at the positions this tap read from.
      d_x_pad = d_x_pad + lax.pad(tap, jnp.float32(0), (
          (0, 0, 0), (i, hp - i - span_h, sh - 1), (j, wp - j - span_w, sw - 1), (0, 0, 0)))
  d_kernel = jnp.stack(d_kernel).reshape(kh, kw, 1, c).astype(kernel.dtype)
  d_x = d_x_pad[:, pt:pt + h, pl:pl + w, :].astype(x.dtype)
  return d_x, d_kernel


_depthwise.defvjp(_depthwise_fwd, _depthwise_bwd)
