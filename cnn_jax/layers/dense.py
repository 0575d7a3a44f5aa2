"""DenseNet-BC's blocks (Huang et al. 2017, Sec. 3 and Table 1): pre-activation order.

Every convolution is preceded by BatchNorm and ReLU ("BN-ReLU-Conv", Sec. 3 "Composite
function"), so these blocks do not use ConvNormAct.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.layers.conv import BatchNorm, Conv
from cnn_jax.layers.pooling import avg_pool

Dtype = Any


class NormActConv(nn.Module):
  """BatchNorm -> ReLU -> Conv (no bias): DenseNet's composite function H_l."""
  features: int
  kernel_size: int = 3
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = BatchNorm(momentum=self.bn_momentum, epsilon=self.bn_epsilon, dtype=self.dtype,
                  name="norm")(x, train)
    return Conv(self.features, self.kernel_size, dtype=self.dtype, name="conv")(nn.relu(x))


class DenseLayer(nn.Module):
  """Concatenate all earlier maps -> BN-ReLU-1x1 conv to bn_size*k -> BN-ReLU-3x3 conv to k.

  Takes the list of earlier feature maps and concatenates them itself: wrapped in
  `nn.remat`, the layer then keeps only those maps (each k channels, shared by every later
  layer) for the backward pass and recomputes the concatenation, BN and ReLU, so memory
  grows linearly with depth instead of quadratically (Pleiss et al. 2017).
  """
  growth_rate: int
  bn_size: int = 4  # the "B" of DenseNet-BC: 1x1 bottleneck to 4k channels (Sec. 3)
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, features: Sequence[jax.Array], train: bool) -> jax.Array:
    x = jnp.concatenate(features, axis=-1) if len(features) > 1 else features[0]
    kw = dict(bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon, dtype=self.dtype)
    x = NormActConv(self.bn_size * self.growth_rate, 1, name="bottleneck", **kw)(x, train)
    return NormActConv(self.growth_rate, 3, name="conv", **kw)(x, train)


class Transition(nn.Module):
  """BN-ReLU-1x1 conv to `features` (compression), then 2x2 average pool, stride 2."""
  features: int
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = NormActConv(self.features, 1, bn_momentum=self.bn_momentum,
                    bn_epsilon=self.bn_epsilon, dtype=self.dtype, name="reduce")(x, train)
    return avg_pool(x, 2, 2)
