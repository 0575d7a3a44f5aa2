"""Blocks of the pre-BatchNorm ImageNet CNNs (AlexNet, ZFNet, VGG).

* `local_response_norm`: AlexNet's normalisation across channels (Krizhevsky et al. 2012,
  Section 3.3), also VGG's A-LRN (Simonyan & Zisserman 2014, Section 2.1).
* `local_contrast_norm`: the same window with the local mean subtracted first, ZFNet's
  "contrast normalized across feature maps" (Zeiler & Fergus 2013, Figure 3).
* `FullyConnectedClassifier`: fc6-fc7-fc8 stored as convolutions, so that the same
  parameters classify one crop or slide over a larger image (VGG Section 3.2, "dense").
* `classic_kernel_init` / `INIT_SCHEMES`: the papers' N(0, 0.01), Glorot, and He.

Grouped convolution (AlexNet's two towers) is `Conv(groups=2)` and ceil-mode pooling
(ZFNet) is `max_pool(ceil_mode=True)`: neither is rewritten here.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from cnn_jax.layers.conv import Conv, he_normal_fan_out
from cnn_jax.layers.pooling import global_avg_pool

Dtype = Any

INIT_SCHEMES = ("paper", "glorot", "he")


def _channel_window_sum(x: jax.Array, size: int) -> jax.Array:
  """Sum over the `size` channels centred on each channel, clipped at the ends (NHWC)."""
  # Zero padding of (size//2, (size-1)//2) keeps channels that do not exist out of the
  # sum, which is the clipping max(0, i - n/2) .. min(N - 1, i + n/2) of Section 3.3.
  pads = ((0, 0), (0, 0), (0, 0), (size // 2, (size - 1) // 2))
  zero = 0.0  # a Python scalar keeps reduce_window differentiable
  return lax.reduce_window(x, zero, lax.add, (1, 1, 1, size), (1, 1, 1, 1), pads)


def local_response_norm(x: jax.Array, size: int = 5, alpha: float = 1e-4,
                        beta: float = 0.75, k: float = 2.0) -> jax.Array:
  """AlexNet's LRN: b_i = a_i / (k + alpha * sum_{|j - i| <= n/2} a_j^2)^beta.

  Defaults are the paper's (Section 3.3: k=2, n=5, alpha=1e-4, beta=0.75), which VGG's
  A-LRN reuses (Section 2.1). `alpha` multiplies the sum itself, as in the paper; Caffe's
  and PyTorch's `LocalResponseNorm` divide their alpha by n, so theirs = n * ours.
  Computed in float32 and returned in the input dtype.
  """
  a = x.astype(jnp.float32)
  denom = (k + alpha * _channel_window_sum(jnp.square(a), size)) ** beta
  return (a / denom).astype(x.dtype)


def local_contrast_norm(x: jax.Array, size: int = 5, alpha: float = 1e-4,
                        beta: float = 0.75, k: float = 2.0) -> jax.Array:
  """Contrast normalisation across feature maps: subtract the local mean, then LRN.

  ZFNet (Figure 3 caption, Section 2) normalises "across feature maps" after pooling in
  layers 1 and 2 but gives no formula. Krizhevsky et al. (Section 3.3) call their LRN
  "brightness normalization" because, unlike contrast normalisation (Jarrett et al.
  2009), it does not subtract the mean; so this is LRN over the same n-channel window
  applied to a_i minus the window's mean (taken over existing channels only), with
  AlexNet's constants. Caffe reproductions of ZFNet use plain LRN instead.
  """
  a = x.astype(jnp.float32)
  ones = jnp.ones((1, 1, 1, a.shape[-1]), jnp.float32)
  mean = _channel_window_sum(a, size) / _channel_window_sum(ones, size)
  return local_response_norm(a - mean, size, alpha, beta, k).astype(x.dtype)


def classic_kernel_init(scheme: str, fully_connected: bool = False) -> Callable:
  """Kernel initialiser of a conv or FC layer under one of `INIT_SCHEMES`.

  'paper':  N(0, 0.01) everywhere: AlexNet Section 5, ZFNet Section 3, VGG Section 3.1
            (VGG's text says "10^-2 variance"; its net A, like AlexNet, used std 0.01).
  'glorot': Glorot & Bengio (2010) uniform, which VGG's footnote (Section 3.1) found
            trains the deeper nets from scratch.
  'he':     He et al. (2015) normal with fan_out for convolutions and N(0, 0.01) for FC
            layers: torchvision's VGG initialisation.
  FC layers are stored as convolutions (`FullyConnectedClassifier`); their fans are those
  of the flattened dense layer (fan_in = window*window*C_in), not of a convolution.
  """
  fc_axes = {"in_axis": (0, 1, 2), "out_axis": -1}
  if scheme == "paper":
    return nn.initializers.normal(0.01)
  if scheme == "glorot":
    return nn.initializers.variance_scaling(1.0, "fan_avg", "uniform",
                                            **(fc_axes if fully_connected else {}))
  if scheme == "he":
    return nn.initializers.normal(0.01) if fully_connected else he_normal_fan_out
  raise ValueError(f"unknown init {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}")


class FullyConnectedClassifier(nn.Module):
  """fc6 -> ReLU -> dropout -> fc7 -> ReLU -> dropout -> fc8 (AlexNet, ZFNet, VGG).

  fc6 is a `window` x `window` VALID convolution over the last feature map and fc7/fc8 are
  1x1 convolutions, so the parameters are those of the flattened dense layers (HWC order).
  On the training crop the map is exactly `window` wide and the output is one position.
  With `dense=True` a larger input gives a map of class scores that is averaged over
  space (VGG Section 3.2, "dense evaluation"; the flipped image is averaged by the
  evaluator). Without it, any other map size is an error rather than a silent crop.

  Dropout 0.5 on the outputs of fc6 and fc7 (AlexNet Section 4.2, VGG Section 3.1).
  `hidden_bias` is the initial bias of fc6/fc7 (AlexNet Section 5 sets 1). `act` is the
  nonlinearity after fc6 and fc7: ReLU in all three papers (tanh for AlexNet's Fig. 1
  comparison).
  """
  num_classes: int
  window: int
  features: Sequence[int] = (4096, 4096)
  dropout_rate: float = 0.5
  dense: bool = False
  kernel_init: Callable = nn.initializers.normal(0.01)
  hidden_bias: float = 0.0
  dtype: Dtype = jnp.float32
  act: Callable = nn.relu

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    if not self.dense and x.shape[1:3] != (self.window, self.window):
      raise ValueError(
          f"the last feature map is {x.shape[1]}x{x.shape[2]} but fc6 covers "
          f"{self.window}x{self.window}: feed the model's input size or use dense "
          f"evaluation (dense_eval=True) for larger inputs")
    widths = tuple(self.features) + (self.num_classes,)
    for i, width in enumerate(widths):
      hidden = i < len(widths) - 1
      x = Conv(width, self.window if i == 0 else 1, padding=0, use_bias=True,
               dtype=self.dtype, kernel_init=self.kernel_init,
               bias_init=nn.initializers.constant(self.hidden_bias if hidden else 0.0),
               name=f"fc{6 + i}")(x)  # Caffe's names for AlexNet's and VGG's FC layers
      if hidden:
        x = self.act(x)
        if i == len(widths) - 2:
          self.sow("intermediates", "pre_logits", x)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    if self.dense:
      self.sow("intermediates", "class_map", x)
    return global_avg_pool(x)  # one position unless dense
