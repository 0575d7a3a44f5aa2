"""The train state: parameters, BatchNorm statistics, optimiser state, EMA, step."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training.dynamic_scale import DynamicScale


class TrainState(struct.PyTreeNode):
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  ema_params: Any  # parameter moving average used for evaluation; None when off
  loss_scale: Any  # flax's DynamicScale for float16 compute; None otherwise
  tx: optax.GradientTransformation = struct.field(pytree_node=False)

  @classmethod
  def create(cls, variables, tx, use_ema: bool, loss_scaling: bool = False) -> "TrainState":
    params = variables["params"]
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params),
               ema_params=jax.tree.map(jnp.copy, params) if use_ema else None,
               loss_scale=initial_loss_scale() if loss_scaling else None, tx=tx)

  def eval_variables(self) -> dict:
    params = self.ema_params if self.ema_params is not None else self.params
    return {"params": params, "batch_stats": self.batch_stats}


def ema_update(ema, params, decay: float, step):
  """TF's ExponentialMovingAverage with num_updates: the decay ramps up early in training."""
  d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema, params)


def initial_loss_scale() -> DynamicScale:
  """Dynamic loss scaling for float16 (Micikevicius et al. 2018): flax's DynamicScale, which
  halves the scale on a non-finite gradient (the step is then skipped by train_step) and
  doubles it after 2000 finite steps; started at 2**15, with array leaves so that it
  shards and checkpoints with the rest of the state."""
  return DynamicScale(scale=jnp.asarray(2.0**15, jnp.float32),
                      fin_steps=jnp.zeros((), jnp.int32))
