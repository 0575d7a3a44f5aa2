"""A convolution over a map smaller than its kernel, as one matrix product of patches, for
the CPU backend.

Where a convolution's kernel covers more pixels than its input map (a 3x3 kernel on the
2x2 maps of VGG at 32 px, or on DenseNet's and ResNet's 1x1 last maps; a 5x5 kernel on a
4x4 map), XLA swaps the two operands (its ConvOperandSwapper pass: the input becomes the
"kernel"), and XLA:CPU runs the swapped convolution with the batch as a feature dimension
through a slow path. Forward and backward of a 3x3, 128 -> 128 convolution on 2x2 maps at
batch 128 took 21.9 ms, of a 5x5 64 -> 64 one on 4x4 maps 66.5 ms; written here as the
patches of the padded input ([N, Ho, Wo, kh*kw*C], one strided slice per tap) times the
kernel reshaped to [kh*kw*C, D], the same sums took 3.5 and 11.9 ms (2 cores, jaxlib
0.10.2). Taps that read only padding are left out, with their kernel rows: on a 1x1 map a
padded 3x3 convolution is its centre tap's 1x1 convolution. Where XLA does not swap (a
3x3 kernel on 3x3 maps and up), its own convolution is faster than this product, so
`applies` asks for XLA's own condition.

The product's gradients are JAX's: a product with the output gradient for the kernel, and
for the input the sum of the patches' gradients, which are only kh*kw small maps here.

`Conv` takes this path on the CPU backend for ungrouped convolutions where `applies`.
The choice is read at trace time: `with patches.custom_path(False): ...` around the
tracing, else the environment variable CNN_JAX_PATCHES_CONV (default 1; 0 switches it
off, as the benchmark's `--plain` does).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from cnn_jax.layers import switch
from cnn_jax.layers.padding import explicit_padding

_switch = switch.TraceTimeSwitch("CNN_JAX_PATCHES_CONV")
enabled = _switch.enabled  # the innermost custom_path(...) choice, else the variable
custom_path = _switch.use  # `with custom_path(False): ...` traces XLA's convolution


def operands_swapped(in_hw: Sequence[int], out_hw: Sequence[int], kernel_hw: Sequence[int],
                     strides: Sequence[int], padding, dilation: Sequence[int]) -> bool:
  """Whether XLA swaps the operands of this convolution or of its input gradient: the
  kernel's area is larger than the input's (or, for the input gradient, the output's),
  over the spatial dimensions that are not a plain contraction (a kernel exactly as large
  as an unpadded input, such as a fully connected layer stored as a convolution)."""
  kernel = maps_in = maps_out = 1
  for size, out, k, s, (low, high), d in zip(in_hw, out_hw, kernel_hw, strides, padding,
                                              dilation):
    if k == size and (low, high) == (0, 0) and s == 1 and d == 1:
      continue
    kernel, maps_in, maps_out = kernel * k, maps_in * size, maps_out * out
  return kernel > min(maps_in, maps_out)


def applies(in_shape: Sequence[int], kernel_hw: Sequence[int], strides: Sequence[int],
            groups: int, dilation: Sequence[int], padding) -> bool:
  """Whether `Conv` should use `patches_conv` for an NHWC input of `in_shape`: on CPU,
  switched on, no groups, and a kernel that XLA would swap with its input
  (`operands_swapped`). Read at trace time."""
  if groups != 1 or not enabled() or jax.default_backend() != "cpu":
    return False
  in_hw = tuple(in_shape[1:3])
  pads = explicit_padding(padding, in_hw, kernel_hw, strides, dilation)
  out_hw = tuple(_out_size(n, k, s, p, d)
                 for n, k, s, p, d in zip(in_hw, kernel_hw, strides, pads, dilation))
  return operands_swapped(in_hw, out_hw, kernel_hw, strides, pads, dilation)


def _out_size(size: int, k: int, stride: int, pad: Sequence[int], dilation: int) -> int:
  return (size + pad[0] + pad[1] - (k - 1) * dilation - 1) // stride + 1


def patches_conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int], padding,
                 dilation: Sequence[int] = (1, 1)) -> jax.Array:
  """NHWC / HWIO convolution without groups, the same sums as
  `lax.conv_general_dilated(x, kernel, strides, padding, rhs_dilation=dilation)`, as the
  product of the input's patches with the kernel."""
  kh, kw, c, d = kernel.shape
  if c != x.shape[-1]:
    raise ValueError(f"patches_conv: kernel {kernel.shape} does not match input {x.shape}")
  (sh, sw), (dh, dw) = strides, dilation
  pads = explicit_padding(padding, x.shape[1:3], (kh, kw), strides, dilation)
  ho, wo = (_out_size(n, k, s, p, dl) for n, k, s, p, dl in
            zip(x.shape[1:3], (kh, kw), strides, pads, dilation))
  xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  # Taps that read only padding add zeros (on a 1x1 map, all but a 3x3 kernel's centre).
  rows = [i for i in range(kh) if _reads_input(i * dh, pads[0][0], sh, ho, x.shape[1])]
  cols = [j for j in range(kw) if _reads_input(j * dw, pads[1][0], sw, wo, x.shape[2])]
  taps = [(i, j) for i in rows for j in cols]
  if not taps:  # every window lies in the padding
    return jnp.zeros((x.shape[0], ho, wo, d), jnp.result_type(x, kernel))
  patches = jnp.concatenate(
      [xp[:, i * dh:i * dh + (ho - 1) * sh + 1:sh, j * dw:j * dw + (wo - 1) * sw + 1:sw]
       for i, j in taps], axis=-1)  # [N, Ho, Wo, taps * C], in the kernel's order
  used = jnp.concatenate([kernel[i, j] for i, j in taps], axis=0)  # [taps * C, D]
  return jnp.dot(patches, used)


def _reads_input(offset: int, pad_low: int, stride: int, out_size: int, size: int) -> bool:
  """Whether a tap at `offset` in the padded input reads any of the `size` input pixels
  over the `out_size` output positions."""
  return any(0 <= offset - pad_low + stride * y < size for y in range(out_size))
