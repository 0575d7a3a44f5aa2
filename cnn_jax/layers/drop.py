"""Stochastic depth (Huang et al. 2016): dropping whole residual branches per example."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class DropPath(nn.Module):
  """Stochastic depth: drops a residual branch per example, scaling survivors by 1/(1-p).

  Huang et al. 2016 drop the branch of a whole residual block; EfficientNet uses it with
  a rate rising linearly with depth. Draws from the 'dropout' rng.
  """
  rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    if deterministic or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    mask = jax.random.bernoulli(self.make_rng("dropout"), keep, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(mask, x / keep, jnp.zeros_like(x))
