"""A convolution whose kernel gradient reads its operands from memory, for the CPU backend.

XLA differentiates a convolution's kernel as another convolution in which the batch is the
contracted feature dimension, so on CPU it first copies the layer's input into a
[C, H, W, N] layout and the output gradient into [H, W, N, D]. XLA fuses the operands'
producers (BatchNorm's scale and shift, the residual addition, ReLU) into those copies, so
each copy recomputes them while it reads the input across the batch, one element per cache
line: in the small-image ResNet-18 of the Fashion-MNIST quickstart (batch 128, 28x28, 16
channels) one such copy took 10.5 ms, where the same transpose of a tensor already in
memory takes 0.7 ms (profiled on 2 cores, jaxlib 0.10.2).

`materialize` is a fence against that fusion: a conditional whose predicate is true for
every value (`isnan(t) | ~isnan(t)`) but that XLA cannot fold, so its operands are buffers
and the copies behind it are plain transposes. `conv` is XLA's convolution with
XLA's own gradients, except that the kernel gradient reads the fenced input and output
gradient: the same numbers, computed in a different order of buffers. Train steps on 2
cores, fenced vs not (`python -m experiments.bench_cpu_gradients --path fence`,
2026-12-06): the quickstart model at batch 128, 28 px 124 -> 112 ms; ResNet-50 at batch
8, 224 px 1475 -> 1297 ms; MobileNetV2 1.09x; EfficientNet-B0 unchanged. XLA's
optimization_barrier does not do this: XLA:CPU removes it before fusion.

`Conv` calls `conv` for the convolutions that XLA computes (neither depthwise.py's nor
pointwise.py's), which takes the fenced path on the CPU backend. The choice is read at
trace time: `with fence.custom_vjp(False): ...` around the tracing, else the environment
variable CNN_JAX_FENCED_VJP (default 1; 0 switches it off, as the benchmark's `--plain`
does).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from cnn_jax.layers import switch

_switch = switch.TraceTimeSwitch("CNN_JAX_FENCED_VJP")
enabled = _switch.enabled  # the innermost custom_vjp(...) choice, else the variable
custom_vjp = _switch.use  # `with custom_vjp(False): ...` traces XLA's gradient


def applies(in_shape: Sequence[int]) -> bool:
  """Whether `conv` fences the kernel gradient of an NHWC input of `in_shape` by default:
  on CPU, switched on, and more than one pixel per image (a squeeze-excite's 1x1 map has
  no copy worth fencing: the conditional would only add a step). Read at trace time."""
  return enabled() and jax.default_backend() == "cpu" and in_shape[1] * in_shape[2] > 1


def materialize(tree, token: jax.Array):
  """`tree` unchanged, but computed into buffers of its own before any of its readers run:
  XLA does not fuse the arrays' producers into their consumers across this fence. `token`
  is any scalar (its value decides nothing: the predicate is true even for NaN); take one
  that every device holds, such as a parameter, so a sharded program needs no
  communication to compute it."""
  token = jnp.asarray(token).reshape(())
  always = jnp.isnan(token) | ~jnp.isnan(token)
  return lax.cond(always, lambda t: t, lambda t: jax.tree.map(jnp.zeros_like, t), tree)


def conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int], padding,
         dilation: Sequence[int] = (1, 1), groups: int = 1,
         fenced: bool | None = None) -> jax.Array:
  """NHWC / HWIO `lax.conv_general_dilated(x, kernel, strides, padding,
  rhs_dilation=dilation, feature_group_count=groups)` (`padding` a string or pairs); when
  `fenced` (default: `applies(x.shape)`), with the kernel gradient computed from fenced operands."""
  padding = padding if isinstance(padding, str) else tuple(tuple(p) for p in padding)
  args = (tuple(strides), padding, tuple(dilation), groups)
  if applies(x.shape) if fenced is None else fenced:
    return _fenced(x, kernel, *args)
  return _conv(x, kernel, *args)


def _conv(x, kernel, strides, padding, dilation, groups):
  return lax.conv_general_dilated(x, kernel, strides, padding, rhs_dilation=dilation,
                                  feature_group_count=groups,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _fenced(x, kernel, strides, padding, dilation, groups):
  return _conv(x, kernel, strides, padding, dilation, groups)


def _fenced_fwd(x, kernel, strides, padding, dilation, groups):
  return _conv(x, kernel, strides, padding, dilation, groups), (x, kernel)


def _fenced_bwd(strides, padding, dilation, groups, residuals, g):
  x, kernel = residuals
  conv = functools.partial(_conv, strides=strides, padding=padding, dilation=dilation,
                           groups=groups)
  d_x = jax.vjp(lambda a: conv(a, kernel), x)[1](g)[0]
  x_m, g_m = materialize((x, g), kernel.reshape(-1)[0])
  d_kernel = jax.vjp(lambda k: conv(x_m, k), kernel)[1](g_m)[0]
  return d_x, d_kernel


_fenced.defvjp(_fenced_fwd, _fenced_bwd)
