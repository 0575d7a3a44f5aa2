"""Pooling with the conventions the papers' frameworks used (Caffe / PyTorch / TF)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from cnn_jax.layers import fence, switch

# On CPU, max pooling's gradient is the custom VJP below (`_max_pool`); XLA:CPU expands
# its own (select_and_scatter) into a reduce-window that carries four int32 index arrays
# of the padded input's size, plus a scatter: ~140 ms of ResNet-50's 1,460 ms train step at
# batch 8, 224 px on 2 cores in a profile (jaxlib 0.10.2); with this one ResNet-50's step
# ran 1.03-1.05x faster, DenseNet-121's 1.11x (`python -m experiments.bench_cpu_gradients
# --path maxpool`). `with max_pool_vjp(False): ...` around tracing, or CNN_JAX_MAXPOOL_VJP=0,
# keeps XLA's.
_switch = switch.TraceTimeSwitch("CNN_JAX_MAXPOOL_VJP")
max_pool_vjp_enabled = _switch.enabled
max_pool_vjp = _switch.use


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
    pads = tuple(lax.padtype_to_pads(x.shape[1:3], (window, window), (stride, stride),
                                     padding.upper()))
  else:
    pads = tuple(_window_padding(s, window, stride, padding, ceil_mode) for s in x.shape[1:3])
  pads = tuple(tuple(int(v) for v in p) for p in pads)
  if max_pool_vjp_enabled() and jax.default_backend() == "cpu":
    return _max_pool(x, window, stride, pads)
  return _reduce_max(x, window, stride, pads)


def _reduce_max(x, window, stride, pads):
  # A Python-scalar identity lets JAX pick the differentiable reduce_window_max.
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, window, window, 1),
                           (1, stride, stride, 1), ((0, 0), *pads, (0, 0)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool(x, window, stride, pads):
  """XLA's max pooling, whose gradient goes to the first maximum of each window in
  row-major order, as XLA's select_and_scatter does; computed as a winner index per
  output (one pass over the window's taps) and, per tap, the output gradient where that
  tap won, spread back onto the input grid by a strided pad."""
  return _reduce_max(x, window, stride, pads)


def _max_pool_fwd(x, window, stride, pads):
  y = _reduce_max(x, window, stride, pads)
  return y, (x, y)


def _max_pool_bwd(window, stride, pads, residuals, g):
  x, y = residuals
  n, h, w, c = x.shape
  ho, wo = y.shape[1:3]
  (pt, pb), (pl, pr) = pads
  xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=-jnp.inf)
  hp, wp = xp.shape[1:3]
  taps = [(i, j) for i in range(window) for j in range(window)]
  span_h, span_w = stride * (ho - 1) + 1, stride * (wo - 1) + 1
  # The first tap (row-major) equal to the maximum; with a NaN in the window, the last.
  winner = jnp.full(y.shape, len(taps) - 1, jnp.int8 if len(taps) < 128 else jnp.int32)
  for t in reversed(range(len(taps) - 1)):
    i, j = taps[t]
    tap = lax.slice(xp, (0, i, j, 0), (n, i + span_h, j + span_w, c), (1, stride, stride, 1))
    winner = jnp.where(tap == y, jnp.asarray(t, winner.dtype), winner)
  # Fenced (fence.py): otherwise XLA recomputes g's producers (in DenseNet, the sum of a
  # dense block's BatchNorm gradients) for every tap that reads them. Pooling has no
  # parameter to take the token from, so it is g's first element.
  winner, g = fence.materialize((winner, g), g.reshape(-1)[0])
  zero = jnp.zeros((), g.dtype)
  d_xp = sum(
      lax.pad(jnp.where(winner == t, g, zero), zero,
              ((0, 0, 0), (i, hp - i - span_h, stride - 1), (j, wp - j - span_w, stride - 1),
               (0, 0, 0)))
      for t, (i, j) in enumerate(taps))
  return (d_xp[:, pt:pt + h, pl:pl + w, :],)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


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
