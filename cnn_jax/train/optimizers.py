"""Optimisers and learning-rate schedules from config fields (the papers' recipes)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("sgd", "nesterov", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step", "exponential")
WEIGHT_DECAY_MODES = ("l2", "decoupled")


def check_weight_decay(config) -> None:
  """ValueError (one line) for weight-decay settings that would silently do something else
  than asked: a misspelt mode (no decay at all), a negative rate, or AdamW with `l2`.

  AdamW's decay is its own decoupled one (optax.adamw, Loshchilov & Hutter), applied
  whatever weight_decay_mode says; with `l2` the penalty would also be added to the loss,
  decaying twice. So adamw with weight_decay > 0 requires weight_decay_mode=decoupled
  (adam with l2 is the coupled variant)."""
  mode = config.weight_decay_mode
  if mode not in WEIGHT_DECAY_MODES:
    raise ValueError(f"unknown weight_decay_mode {mode!r}; set --config.weight_decay_mode to "
                     f"one of {', '.join(WEIGHT_DECAY_MODES)}")
  if not config.weight_decay >= 0:
    raise ValueError(f"weight_decay={config.weight_decay} must be >= 0; set "
                     f"--config.weight_decay")
  if config.optimizer == "adamw" and config.weight_decay and mode == "l2":
    raise ValueError(f"optimizer=adamw applies weight_decay={config.weight_decay} itself "
                     f"(decoupled); weight_decay_mode=l2 would add it to the loss as well: set "
                     f"--config.weight_decay_mode=decoupled (or optimizer=adam for L2 decay)")


def learning_rate_schedule(config, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
  """Linear warm-up for `warmup_epochs`, then the named schedule (epochs -> steps)."""
  base = config.learning_rate
  warmup = int(round(config.warmup_epochs * steps_per_epoch))
  name = config.lr_schedule
  if name == "constant":
    after = optax.constant_schedule(base)
  elif name == "cosine":
    after = optax.cosine_decay_schedule(base, max(total_steps - warmup, 1))
  elif name == "step":
    # Drops at absolute epochs, as the papers state them ("divided by 10 at 30 and 60").
    boundaries = {int(e * steps_per_epoch) - warmup: config.lr_decay_factor
                  for e in config.lr_decay_epochs}
    after = optax.piecewise_constant_schedule(base, boundaries)
  elif name == "exponential":
    # TF's staircase exponential decay: x factor every `lr_decay_every_epochs`.
    after = optax.exponential_decay(
        base, transition_steps=max(int(config.lr_decay_every_epochs * steps_per_epoch), 1),
        decay_rate=config.lr_decay_factor, staircase=True)
  else:
    raise ValueError(f"unknown lr_schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
  if warmup <= 0:
    return after
  return optax.join_schedules([optax.linear_schedule(0.0, base, warmup), after], [warmup])


def decay_mask(params, exclude_bn_bias: bool):
  """True for parameters that get weight decay; BN scales/offsets and biases optionally not."""
  def keep(path, x):
    if not exclude_bn_bias:
      return True
    names = [getattr(k, "key", str(k)) for k in path]
    return x.ndim > 1 and not any(n in ("bn", "norm") for n in names)
  return jax.tree_util.tree_map_with_path(keep, params)


def create_optimizer(config, schedule: optax.Schedule) -> optax.GradientTransformation:
  check_weight_decay(config)
  name = config.optimizer
  if name in ("sgd", "nesterov"):
    tx = optax.sgd(schedule, momentum=config.momentum or None, nesterov=name == "nesterov")
  elif name == "rmsprop":
    # TF's RMSProp: eps inside the sqrt, accumulator starting at 1 (Inception, EfficientNet).
    tx = optax.rmsprop(schedule, decay=config.rmsprop_decay, eps=config.rmsprop_eps,
                       momentum=config.momentum or None, initial_scale=1.0, eps_in_sqrt=True)
  elif name == "adam":
    tx = optax.adam(schedule)
  elif name == "adamw":
    tx = optax.adamw(schedule, weight_decay=config.weight_decay,
                     mask=lambda p: decay_mask(p, config.weight_decay_exclude_bn_bias))
  else:
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
  chain = []
  if config.grad_clip_norm:
    chain.append(optax.clip_by_global_norm(config.grad_clip_norm))
  if config.weight_decay and config.weight_decay_mode == "decoupled" and name != "adamw":
    # Decoupled decay scaled by the learning rate, as in Loshchilov & Hutter.
    chain.append(optax.add_decayed_weights(
        config.weight_decay, mask=lambda p: decay_mask(p, config.weight_decay_exclude_bn_bias)))
  chain.append(tx)
  return optax.chain(*chain) if len(chain) > 1 else tx


def l2_penalty(params, config) -> jax.Array:
  """0.5 * wd * ||w||^2 over decayed parameters: the papers' (Caffe/PyTorch) weight decay."""
  if not config.weight_decay or config.weight_decay_mode != "l2":
    return jnp.zeros((), jnp.float32)
  mask = decay_mask(params, config.weight_decay_exclude_bn_bias)
  leaves = [jnp.sum(jnp.square(p)) for p, m in zip(jax.tree.leaves(params),
                                                   jax.tree.leaves(mask)) if m]
  return 0.5 * config.weight_decay * sum(leaves)
