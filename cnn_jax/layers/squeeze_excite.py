"""Squeeze-and-excitation (Hu et al. 2018), as MobileNet v3 (Howard et al. 2019, Sec. 5.3)
and EfficientNet (Tan & Le 2019) use it."""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.layers.conv import Conv

Dtype = Any


class SqueezeExcite(nn.Module):
  """Global pool -> 1x1 conv to `squeeze_features` -> act -> 1x1 conv back -> gate -> scale.

  The squeeze width is the caller's choice because the families differ: EfficientNet
  squeezes the block *input* width by 0.25, MobileNet v3 the *expanded* width to
  make_divisible(expanded / 4, 8). Both 1x1 convs have biases (they act on a 1x1 map, so
  they are the two fully connected layers of Hu et al. 2018, Fig. 2).
  """
  squeeze_features: int
  act: Callable = nn.relu
  gate: Callable = nn.sigmoid
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    s = jnp.mean(x.astype(jnp.float32), axis=(1, 2), keepdims=True).astype(self.dtype)
    s = Conv(self.squeeze_features, 1, use_bias=True, dtype=self.dtype, name="reduce")(s)
    s = self.act(s)
    s = Conv(x.shape[-1], 1, use_bias=True, dtype=self.dtype, name="expand")(s)
    return x * self.gate(s).astype(x.dtype)
