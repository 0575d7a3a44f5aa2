"""The train state: parameters, BatchNorm statistics, optimiser state, EMA, step."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct


class TrainState(struct.PyTreeNode):
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  ema_params: Any  # parameter moving average used for evaluation; None when off
  tx: optax.GradientTransformation = struct.field(pytree_node=False)

  @classmethod
  def create(cls, variables, tx, use_ema: bool) -> "TrainState":
    params = variables["params"]
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params),
               ema_params=jax.tree.map(jnp.copy, params) if use_ema else None, tx=tx)

  def eval_variables(self) -> dict:
    params = self.ema_params if self.ema_params is not None else self.params
    return {"params": params, "batch_stats": self.batch_stats}


def ema_update(ema, params, decay: float, step):
  """TF's ExponentialMovingAverage with num_updates: the decay ramps up early in training."""
  d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema, params)
