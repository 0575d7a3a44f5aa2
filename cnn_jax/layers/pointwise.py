"""A 1x1 convolution whose kernel gradient is a batched matrix product, for the CPU backend.

XLA differentiates a convolution's kernel as another convolution in which the batch is the
contracted feature dimension, so on CPU it first copies the layer's input into a
[C, H, W, N] layout. In a training step XLA fuses the input's producers (BatchNorm, the
residual additions, ReLU) into that copy and recomputes them while writing with the batch
as the fastest axis, which made these copies the largest cost of ResNet-50's train step
(measured with the profiler on 2 cores, jaxlib 0.10.2). For a 1x1 convolution the kernel
gradient is a plain sum of matrix products,

  d kernel[c, d] = sum_n  x[n]^T g[n]      (x[n]: [H*W, C], g[n]: [H*W, D])

which XLA runs without the transposed copy. Measured on 2 cores, batch 8, with a ReLU
feeding the layer: 56x56, 256 -> 64 channels 37 -> 10 ms; 28x28, 512 -> 128 18 -> 10 ms; at
14x14 the batched product is slower than XLA's own gradient (10 -> 15 ms), so `Conv` takes
this path only from MIN_PIXELS output pixels per image. The forward pass and the input
gradient are XLA's convolutions, unchanged. `python -m experiments.bench_cpu_gradients --path pointwise`
times a train step with and without it.

`Conv` takes this path on the CPU backend for 1x1 convolutions without groups, dilation or
padding (a strided one reads every s-th pixel first) and with at least MIN_PIXELS output
pixels. The choice is read at trace time:
`with pointwise.custom_vjp(False): ...` around the tracing, else the environment variable
CNN_JAX_POINTWISE_VJP (default 1; 0 switches it off, as the benchmark's `--plain` does).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from cnn_jax.layers import switch

_switch = switch.TraceTimeSwitch("CNN_JAX_POINTWISE_VJP")
enabled = _switch.enabled  # the innermost custom_vjp(...) choice, else the variable
custom_vjp = _switch.use  # `with custom_vjp(False): ...` traces XLA's gradient

# Pixels per image from which the kernel gradient is the batched product (28x28 and up).
MIN_PIXELS = 28 * 28


def applies(in_shape: Sequence[int], kernel_size: Sequence[int], strides: Sequence[int],
            groups: int, dilation: Sequence[int], padding) -> bool:
  """Whether `Conv` should use `pointwise_conv` for an NHWC input of `in_shape`: a 1x1
  kernel, no groups, no dilation, no padding (`padding` as resolved by
  `padding.resolve_padding`), at least MIN_PIXELS output pixels, on CPU, switched on. Read at
  trace time."""
  out_pixels = -(-in_shape[1] // strides[0]) * -(-in_shape[2] // strides[1])
  return (tuple(kernel_size) == (1, 1) and groups == 1 and tuple(dilation) == (1, 1)
          and padding in ("SAME", "VALID", ((0, 0), (0, 0))) and out_pixels >= MIN_PIXELS
          and enabled() and jax.default_backend() == "cpu")


def pointwise_conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int] = (1, 1)) -> jax.Array:
  """NHWC 1x1 convolution, kernel [1, 1, C, D]; the same result as
  `lax.conv_general_dilated(x, kernel, strides, 'VALID')`."""
  if kernel.shape[:2] != (1, 1) or kernel.shape[2] != x.shape[-1]:
    raise ValueError(f"pointwise_conv: kernel {kernel.shape} does not match input {x.shape}")
  sh, sw = (int(s) for s in strides)
  if (sh, sw) != (1, 1):
    x = x[:, ::sh, ::sw]
  return _pointwise(x, kernel)


def _conv(x, kernel):
  return lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


@jax.custom_vjp
def _pointwise(x, kernel):
  return _conv(x, kernel)


def _pointwise_fwd(x, kernel):
  return _conv(x, kernel), (x, kernel)


def _pointwise_bwd(residuals, g):
  x, kernel = residuals
  d_x = jax.vjp(lambda x: _conv(x, kernel), x)[1](g)[0]
  n, h, w, c = x.shape
  # Accumulate in at least float32 (bfloat16 / float16 inputs); float64 stays float64.
  acc = jnp.promote_types(x.dtype, jnp.float32)
  per_image = jnp.einsum("npc,npd->ncd", x.reshape(n, h * w, c),
                         g.reshape(n, h * w, g.shape[-1]), preferred_element_type=acc)
  d_kernel = per_image.sum(0).astype(kernel.dtype)[None, None]
  return d_x, d_kernel


_pointwise.defvjp(_pointwise_fwd, _pointwise_bwd)
