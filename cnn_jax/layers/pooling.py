"""Pooling with the conventions the papers' frameworks used (Caffe / PyTorch / TF)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def _window_padding(size: int, window: int, stride: int, pad: int, ceil_mode: bool):
  """(low, high) padding along one axis, with Caffe/PyTorch ceil-mode semantics."""
  span = size + 2 * pad - window
  out = -(-span // stride) + 1 if ceil_mode else span // stride + 1
  # PyTorch: the last window must start inside the input or the left padding.
  if ceil_mode and (out - 1) * stride >= size + pad:
    out -= 1
  high = max((out - 1) * stride + window - size - pad, 0)
  return pad, high


def max_pool(x: jax.Array, window: int = 3, stride: int = 2, padding: int | str = 0,
             ceil_mode: bool = False) -> jax.Array:
  """NHWC max pooling; padded positions never win (they are -inf).

  `padding` is symmetric pixels (PyTorch) or 'SAME' / 'VALID' (TF); `ceil_mode` rounds
  the output size up as Caffe did (GoogLeNet, ZFNet).
  """
  if isinstance(padding, str):
    pads = padding.upper()
  else:
    pads = ((0, 0),) + tuple(_window_padding(s, window, stride, padding, ceil_mode)
                             for s in x.shape[1:3]) + ((0, 0),)
  # A Python-scalar identity lets JAX pick the differentiable reduce_window_max.
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, window, window, 1), (1, stride, stride, 1), pads)


def avg_pool(x: jax.Array, window: int = 3, stride: int = 1, padding: int | str = 0,
             ceil_mode: bool = False, count_include_pad: bool = True) -> jax.Array:
  """NHWC average pooling; `count_include_pad=False` is TF's rule for padded windows."""
  if isinstance(padding, str):
    pads = padding.upper()
    if pads == "SAME":
      count_include_pad = False
  else:
    pads = ((0, 0),) + tuple(_window_padding(s, window, stride, padding, ceil_mode)
                             for s in x.shape[1:3]) + ((0, 0),)
  dims, strides = (1, window, window, 1), (1, stride, stride, 1)
  zero = 0.0  # a Python scalar keeps reduce_window differentiable
  total = lax.reduce_window(x, zero, lax.add, dims, strides, pads)
  if count_include_pad and not isinstance(pads, str):
    # PyTorch divides by the window clipped to input+symmetric padding, not to ceil overhang.
    sym = ((0, 0),) + tuple((p[0], p[0]) for p in pads[1:3]) + ((0, 0),)
    # The symmetric padding counts as window (ones), as in PyTorch; ceil overhang does not.
    ones = jnp.pad(jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype),
                   tuple((a, b) for a, b in sym), constant_values=1)
    extra = ((0, 0),) + tuple((0, p[1] - p[0]) for p in pads[1:3]) + ((0, 0),)
    count = lax.reduce_window(ones, zero, lax.add, dims, strides, extra)
  else:
    ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
    count = lax.reduce_window(ones, zero, lax.add, dims, strides, pads)
  return total / count


def global_avg_pool(x: jax.Array) -> jax.Array:
  """[N, H, W, C] -> [N, C], averaging in float32 for bf16 inputs."""
  return jnp.mean(x.astype(jnp.float32), axis=(1, 2)).astype(x.dtype)


def adaptive_avg_pool(x: jax.Array, grid: int) -> jax.Array:
  """PyTorch's `adaptive_avg_pool2d` to grid x grid: bin i covers rows
  floor(i*H/g) .. ceil((i+1)*H/g) - 1 (bins overlap when g does not divide H)."""
  h, w = x.shape[1:3]
  rows = []
  for i in range(grid):
    r0, r1 = (i * h) // grid, -(-((i + 1) * h) // grid)
    cols = []
    for j in range(grid):
      c0, c1 = (j * w) // grid, -(-((j + 1) * w) // grid)
      cols.append(jnp.mean(x[:, r0:r1, c0:c1, :].astype(jnp.float32), axis=(1, 2)))
    rows.append(jnp.stack(cols, axis=1))
  return jnp.stack(rows, axis=1).astype(x.dtype)
