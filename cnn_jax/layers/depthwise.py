"""A depthwise convolution whose gradient does only the work it needs, for the CPU backend.

XLA on CPU differentiates a depthwise convolution (feature_group_count == channels) into
grouped convolutions that do roughly kernel-area-times-channels more work than needed,
which made MobileNet training on CPU slow (experiments/bench_cpu_gradients.py measures
a mobilenet_v2 train step with and without this module). Here the
backward pass is written as kh*kw shifted multiply-adds: for each tap (i, j) of the
kernel,

  d kernel[i, j, c] = sum_{n, y, x} g[n, y, x, c] * x_pad[n, i + s*y, j + s*x, c]
  d x_pad[n, i + s*y, j + s*x, c] += g[n, y, x, c] * kernel[i, j, c]

which is exactly the forward pass's multiply-add count. The forward pass, in training
and in inference, is the same shifted multiply-adds: XLA's CPU depthwise convolution is
slow as well (with it, MobileNetV2 inference at batch 8 ran at 0.17x PyTorch's; `make
bench`). The MAC counter in models/summary.py traces with this path off, so it still reads
the convolution. `Conv` takes this path only on the CPU backend, for depthwise
convolutions (groups == in == out channels) without dilation; elsewhere XLA's own
convolution and gradient are used.

The choice is explicit and read at trace time: `with depthwise.custom_vjp(False): ...`
around the tracing (experiments/bench_cpu_gradients.py compares both); outside any such
context the environment variable CNN_JAX_DEPTHWISE_VJP (default 1; 0 switches it off)
decides, which is how a user turns it off for a whole run.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from cnn_jax.layers import switch
from cnn_jax.layers.padding import explicit_padding

_switch = switch.TraceTimeSwitch("CNN_JAX_DEPTHWISE_VJP")
# Whether `Conv` uses the custom VJP: the innermost `custom_vjp(...)` context's choice,
# else CNN_JAX_DEPTHWISE_VJP (on unless it is "0").
enabled = _switch.enabled
# `with custom_vjp(False): ...`: functions traced within use XLA's depthwise convolution.
custom_vjp = _switch.use


def applies(groups: int, in_features: int, out_features: int,
            dilation: Sequence[int] = (1, 1)) -> bool:
  """Whether `Conv` should use `depthwise_conv` (read at trace time)."""
  return (enabled() and jax.default_backend() == "cpu" and groups == in_features == out_features
          and tuple(dilation) == (1, 1))


def depthwise_conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                   padding) -> jax.Array:
  """NHWC depthwise convolution, kernel [kh, kw, 1, C]; same result as
  `lax.conv_general_dilated(..., feature_group_count=C)`. `padding` is 'SAME' / 'VALID'
  or ((top, bottom), (left, right))."""
  if kernel.shape[2] != 1 or kernel.shape[3] != x.shape[-1]:
    raise ValueError(f"depthwise_conv: kernel {kernel.shape} does not match input {x.shape}")
  strides = tuple(int(s) for s in strides)
  pads = explicit_padding(padding, x.shape[1:3], kernel.shape[:2], strides)
  return _depthwise(x, kernel, strides, pads)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise(x, kernel, strides, pads):
  return _shifted_multiply_adds(x, kernel, strides, pads)


def _phases(x, strides, pads):
  """Pads `x` and splits it into stride phases: [s_h][s_w] arrays [N, Hq, Wq, C].

  Tap (i, j) of a stride-s window reads phase (i % s_h, j % s_w) at offset
  (i // s_h, j // s_w), so every tap becomes a contiguous slice of one phase.
  """
  n, h, w, c = x.shape
  (sh, sw), ((pt, pb), (pl, pr)) = strides, pads
  hq, wq = -(-(h + pt + pb) // sh), -(-(w + pl + pr) // sw)
  x = jnp.pad(x, ((0, 0), (pt, hq * sh - h - pt), (pl, wq * sw - w - pl), (0, 0)))
  x = x.reshape(n, hq, sh, wq, sw, c)
  return [[x[:, :, a, :, b, :] for b in range(sw)] for a in range(sh)]


def _window(phases, i, j, strides, out_hw):
  (sh, sw), (ho, wo) = strides, out_hw
  p = phases[i % sh][j % sw]
  return p[:, i // sh:i // sh + ho, j // sw:j // sw + wo, :]


def _shifted_multiply_adds(x, kernel, strides, pads):
  """The depthwise convolution as kh*kw shifted multiply-adds (one per kernel tap)."""
  kh, kw = kernel.shape[:2]
  out_hw = tuple((d + p0 + p1 - k) // s + 1
                 for d, (p0, p1), k, s in zip(x.shape[1:3], pads, (kh, kw), strides))
  phases = _phases(x, strides, pads)
  return sum(_window(phases, i, j, strides, out_hw) * kernel[i, j, 0]
             for i in range(kh) for j in range(kw))


def _depthwise_fwd(x, kernel, strides, pads):
  return _shifted_multiply_adds(x, kernel, strides, pads), (x, kernel)


def _depthwise_bwd(strides, pads, residuals, g):
  x, kernel = residuals
  n, h, w, c = x.shape
  kh, kw = kernel.shape[:2]
  sh, sw = strides
  (pt, _), (pl, _) = pads
  ho, wo = g.shape[1:3]
  phases = _phases(x, strides, pads)
  hq, wq = phases[0][0].shape[1:3]
  # Accumulate in at least float32 (bfloat16 / float16 inputs), float64 stays float64.
  acc = jnp.promote_types(x.dtype, jnp.float32)
  g32 = g.astype(acc)
  # All taps' products summed over the width in one variadic reduce (one loop that reads x
  # and g once), then each over batch and height. One reduce per tap over (n, y, x) read
  # both again for every tap and took 40% of EfficientNet-B0's train step; this is 3-9x
  # faster per layer on 2 cores, and its shorter sums round less.
  products = tuple(_window(phases, i, j, strides, (ho, wo)).astype(acc) * g32
                   for i in range(kh) for j in range(kw))
  rows = lax.reduce(products, tuple(jnp.zeros((), acc) for _ in products),
                    lambda a, b: tuple(u + v for u, v in zip(a, b)), (2,))
  d_kernel = jnp.stack([r.reshape(-1, c).sum(0) for r in rows]).reshape(kh, kw, 1, c)
  # Each tap (i, j) sends g * kernel[i, j] back to the positions it read: offset
  # (i // s, j // s) within phase (i % s, j % s). Per phase that is a full correlation of
  # g with the phase's taps, flipped: g padded once, then shifted multiply-adds, as in the
  # forward pass (one pad per phase instead of one per tap: EfficientNet-B0's train step
  # ran 9% faster and MobileNetV2's 7% on 2 cores).
  kernel_acc = kernel.astype(acc)
  d_phases = [[None] * sw for _ in range(sh)]
  for a in range(sh):
    for b in range(sw):
      taps_i, taps_j = range(a, kh, sh), range(b, kw, sw)
      if not taps_i or not taps_j:
        d_phases[a][b] = jnp.zeros((n, hq, wq, c), acc)
        continue
      mi, mj = len(taps_i), len(taps_j)
      gp = jnp.pad(g32, ((0, 0), (mi - 1, hq - ho), (mj - 1, wq - wo), (0, 0)))
      d_phases[a][b] = sum(
          gp[:, t:t + hq, u:u + wq, :] * kernel_acc[taps_i[mi - 1 - t], taps_j[mj - 1 - u], 0]
          for t in range(mi) for u in range(mj))
  d_x = jnp.stack([jnp.stack(row, axis=3) for row in d_phases], axis=2)
  d_x = d_x.reshape(n, hq * sh, wq * sw, c)[:, pt:pt + h, pl:pl + w, :]
  return d_x.astype(x.dtype), d_kernel.astype(kernel.dtype)


_depthwise.defvjp(_depthwise_fwd, _depthwise_bwd)
