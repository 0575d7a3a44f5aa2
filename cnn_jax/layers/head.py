"""Classifier heads."""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.layers.pooling import global_avg_pool


class ClassifierHead(nn.Module):
  """Global average pool -> dropout -> dense to classes.

  `flatten=True` replaces the average pool by flattening the whole final map (HWC
  order), so the dense layer is fully connected to every position: the alternative that
  GoogLeNet's average pooling replaced (Szegedy et al. 2014, Section 5). Its weight
  then grows with the map, i.e. with the input size.

  The logits come out in the compute dtype; the trainer casts them to float32 before the
  loss.
  """
  num_classes: int
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32
  kernel_init: Callable = nn.initializers.lecun_normal()
  flatten: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = x.reshape(x.shape[0], -1) if self.flatten else global_avg_pool(x)
    self.sow("intermediates", "pre_logits", x)
    if self.dropout_rate:
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=jnp.float32,
                    kernel_init=self.kernel_init, name="fc")(x)
