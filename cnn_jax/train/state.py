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
  loss_scale: Any  # DynamicLossScale for float16 compute; None otherwise
  tx: optax.GradientTransformation = struct.field(pytree_node=False)

  @classmethod
  def create(cls, variables, tx, use_ema: bool, loss_scaling: bool = False) -> "TrainState":
    params = variables["params"]
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params),
               ema_params=jax.tree.map(jnp.copy, params) if use_ema else None,
               loss_scale=DynamicLossScale.create() if loss_scaling else None, tx=tx)

  def eval_variables(self) -> dict:
    params = self.ema_params if self.ema_params is not None else self.params
    return {"params": params, "batch_stats": self.batch_stats}


def ema_update(ema, params, decay: float, step):
  """TF's ExponentialMovingAverage with num_updates: the decay ramps up early in training."""
  d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema, params)


class DynamicLossScale(struct.PyTreeNode):
  """Dynamic loss scaling for float16 (Micikevicius et al. 2018): halve the scale and skip
  the step on a non-finite gradient; double it after `period` finite steps in a row."""
  scale: jax.Array
  good_steps: jax.Array
  period: int = struct.field(pytree_node=False, default=2000)

  @classmethod
  def create(cls, initial: float = 2.0**15) -> "DynamicLossScale":
    return cls(scale=jnp.asarray(initial, jnp.float32), good_steps=jnp.zeros((), jnp.int32))

  def update(self, grads_finite: jax.Array) -> "DynamicLossScale":
    grow = grads_finite & (self.good_steps + 1 >= self.period)
    scale = jnp.where(grads_finite, jnp.where(grow, self.scale * 2, self.scale),
                      jnp.maximum(self.scale / 2, 1.0))
    good = jnp.where(grads_finite & ~grow, self.good_steps + 1, 0)
    return self.replace(scale=scale, good_steps=good)
