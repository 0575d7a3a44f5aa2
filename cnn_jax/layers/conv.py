"""The one convolution primitive every model uses, and conv-norm-activation.

All convolutions in cnn_jax go through `Conv`, so that a backend-specific path (on CPU a
faster depthwise convolution, a 1x1 convolution's kernel gradient without a transposed
copy, a convolution over a map smaller than its kernel as a product of patches, and the
other convolutions' kernel gradients from fenced operands) is chosen in one place and
never per model.
Parameters are named `kernel` (HWIO, input channels divided by `groups`) and `bias`,
exactly like `flax.linen.Conv`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from cnn_jax.layers import depthwise, fence, patches, pointwise
from cnn_jax.layers.padding import PaddingLike, resolve_padding

# Convs with 2..SPLIT_GROUPS_UP_TO groups run as one dense conv per group on CPU (measured
# on 2 cores: AlexNet's grouped conv2/4/5 made its training step ~7x slower than the
# ungrouped torchvision layout). Depthwise convs have their own path (depthwise.py).
SPLIT_GROUPS_UP_TO = 4

Dtype = Any

# torchvision's default for convolutions feeding ReLU (He et al. 2015, fan_out).
he_normal_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
# He et al. 2015's fan-in form: keeps activations bounded in nets without BatchNorm whose
# 1x1 reductions shrink the fan-out (GoogLeNet).
he_normal_fan_in = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


class Conv(nn.Module):
  """2D convolution, NHWC, with optional groups (grouped / depthwise) and bias."""
  features: int
  kernel_size: int | Sequence[int] = 3
  strides: int | Sequence[int] = 1
  padding: PaddingLike = None
  dilation: int | Sequence[int] = 1
  groups: int = 1
  use_bias: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  kernel_init: Callable = he_normal_fan_out
  bias_init: Callable = nn.initializers.zeros

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kh, kw = _pair(self.kernel_size)
    in_features = x.shape[-1]
    if in_features % self.groups or self.features % self.groups:
      raise ValueError(
          f"Conv: in={in_features} and out={self.features} channels must both divide "
          f"groups={self.groups}")
    kernel = self.param("kernel", self.kernel_init,
                        (kh, kw, in_features // self.groups, self.features),
                        self.param_dtype)
    dilation, strides = _pair(self.dilation), _pair(self.strides)
    padding = resolve_padding(self.padding, (kh, kw), dilation)
    if depthwise.applies(self.groups, in_features, self.features, dilation):
      # CPU only: XLA's own depthwise convolution and gradient are slow there.
      y = depthwise.depthwise_conv(
          x.astype(self.dtype), kernel.astype(self.dtype), strides, padding)
    elif pointwise.applies(x.shape, (kh, kw), strides, self.groups, dilation, padding):
      # CPU only: a kernel gradient without XLA's transposed copy of the input.
      y = pointwise.pointwise_conv(x.astype(self.dtype), kernel.astype(self.dtype),
                                   strides)
    elif patches.applies(x.shape, (kh, kw), strides, self.groups, dilation, padding):
      # CPU only: a map smaller than the kernel, where XLA would swap the operands.
      y = patches.patches_conv(x.astype(self.dtype), kernel.astype(self.dtype), strides,
                               padding, dilation)
    else:
      # On CPU the kernel gradient reads its operands from memory (fence.py).
      conv = functools.partial(fence.conv, strides=strides, dilation=dilation,
                               padding=padding)
      x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
      if 1 < self.groups <= SPLIT_GROUPS_UP_TO and jax.default_backend() == "cpu":
        # A few groups (AlexNet's two towers): one dense conv per group is the same sum,
        # and XLA:CPU differentiates it several times faster than a grouped conv.
        y = jnp.concatenate([conv(xg, kg) for xg, kg in zip(
            jnp.split(x, self.groups, axis=-1), jnp.split(kernel, self.groups, axis=-1))],
                            axis=-1)
      else:
        y = conv(x, kernel, groups=self.groups)
    if self.use_bias:
      bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
      y = y + bias.astype(self.dtype)
    return y


class BatchNorm(nn.Module):
  """BatchNorm whose mode follows `train`; PyTorch defaults (eps 1e-5, momentum 0.1).

  Flax's `momentum` is the decay of the running average: PyTorch momentum 0.1 is Flax
  0.9, TF/Keras decay 0.99 is Flax 0.99. Under `jax.jit` over a sharded batch the
  statistics are those of the global batch, not of each device's shard. The variables
  are flax.linen.BatchNorm's, in a submodule named `bn`.
  """
  momentum: float = 0.9
  epsilon: float = 1e-5
  use_scale: bool = True
  use_bias: bool = True
  scale_init: Callable = nn.initializers.ones
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool,
               parts: Sequence[jax.Array] | None = None) -> jax.Array:
    """`parts`: arrays whose concatenation along the channels is `x` (DenseNet's earlier
    maps). The batch statistics are then each part's, concatenated: the same numbers, and
    XLA computes them once per part for every layer that reads it."""
    return _ScaleShiftBatchNorm(
        momentum=self.momentum, epsilon=self.epsilon, use_scale=self.use_scale,
        use_bias=self.use_bias, scale_init=self.scale_init, dtype=self.dtype,
        name="bn")(x, use_running_average=not train, parts=parts)


class _ScaleShiftBatchNorm(nn.Module):
  """flax.linen.BatchNorm's variables and statistics (float32, one pass: E[x^2] - E[x]^2
  clipped at 0, the running averages), applied as one per-channel scale and shift,

    y = x * (scale / sqrt(var + eps)) + (bias - mean * scale / sqrt(var + eps)),

  instead of flax's ((x - mean) * rsqrt(var + eps) * scale) + bias. The same function;
  its gradient has one fewer operation on the whole activation, which made the train step
  of the quickstart's ResNet 12% faster, DenseNet-121's 12% and ResNet-50's ~5% on 2 CPU
  cores (jaxlib 0.10.2).
  """
  momentum: float
  epsilon: float
  use_scale: bool
  use_bias: bool
  scale_init: Callable
  dtype: Dtype

  @nn.compact
  def __call__(self, x: jax.Array, use_running_average: bool,
               parts: Sequence[jax.Array] | None = None) -> jax.Array:
    features = (x.shape[-1],)
    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, features, jnp.float32)
    ra_var = self.variable("batch_stats", "var", jnp.ones, features, jnp.float32)
    if use_running_average:
      mean, var = ra_mean.value, ra_var.value
    else:
      parts = [x] if parts is None else parts
      if sum(p.shape[-1] for p in parts) != x.shape[-1]:
        raise ValueError(f"BatchNorm: parts with {[p.shape[-1] for p in parts]} channels "
                         f"do not add up to the input's {x.shape[-1]}")
      stats = [p.astype(jnp.promote_types(p.dtype, jnp.float32)) for p in parts]
      axes = tuple(range(x.ndim - 1))
      mean = _channels([p.mean(axes) for p in stats])
      mean_sq = _channels([jnp.square(p).mean(axes) for p in stats])
      var = jnp.maximum(0.0, mean_sq - jnp.square(mean))
      if not self.is_initializing():
        ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
        ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    mul = lax.rsqrt(var + self.epsilon)
    if self.use_scale:
      mul = mul * self.param("scale", self.scale_init, features, jnp.float32)
    shift = -mean * mul
    if self.use_bias:
      shift = shift + self.param("bias", nn.initializers.zeros, features, jnp.float32)
    return (x * mul + shift).astype(self.dtype)


def _channels(vectors: list[jax.Array]) -> jax.Array:
  """Per-channel vectors of consecutive parts as one vector (one part: itself)."""
  return vectors[0] if len(vectors) == 1 else jnp.concatenate(vectors)


class ConvNormAct(nn.Module):
  """Conv -> BatchNorm -> activation, the unit of almost every CNN since 2015.

  `act=None` gives conv-norm (residual branches, projections); `norm=False` gives a
  conv with bias followed by the activation (AlexNet, VGG, GoogLeNet).
  """
  features: int
  kernel_size: int | Sequence[int] = 3
  strides: int | Sequence[int] = 1
  padding: PaddingLike = None
  groups: int = 1
  act: Callable | None = nn.relu
  norm: bool = True
  use_bias: bool | None = None  # default: bias only when there is no norm
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  bn_scale_init: Callable = nn.initializers.ones
  kernel_init: Callable = he_normal_fan_out
  bias_init: Callable = nn.initializers.zeros
  dtype: Dtype = jnp.float32
  bn_scale: bool = True  # False: BN without the learned scale (Keras's scale=False)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    use_bias = (not self.norm) if self.use_bias is None else self.use_bias
    x = Conv(self.features, self.kernel_size, self.strides, self.padding,
             groups=self.groups, use_bias=use_bias, dtype=self.dtype,
             kernel_init=self.kernel_init, bias_init=self.bias_init, name="conv")(x)
    if self.norm:
      x = BatchNorm(momentum=self.bn_momentum, epsilon=self.bn_epsilon,
                    use_scale=self.bn_scale, scale_init=self.bn_scale_init,
                    dtype=self.dtype, name="norm")(x, train)
    if self.act is not None:
      x = self.act(x)
    return x
