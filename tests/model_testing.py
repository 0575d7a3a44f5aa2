"""Shared checks for model tests: parameter counts and a one-step training smoke test."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnn_jax.models import summary

# Tests check shapes and numbers, not speed: LLVM's optimisation passes dominate the
# compile time of a whole network on CPU, so the model tests compile without them.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def fast_jit(fn, **kwargs):
  return jax.jit(fn, compiler_options=FAST_COMPILE, **kwargs)


def assert_param_count(name: str, expected: int, **overrides):
  got = summary.count_params(name, **overrides)
  assert got == expected, f"{name}: {got:,} params, reference {expected:,} ({got - expected:+,})"


def forward_and_train_step(model, size: int, num_classes: int, batch: int = 2,
                           channels: int = 3):
  """Initialises `model`, checks the forward shape, takes one SGD step; returns losses.

  Returns (loss_before, loss_after) on a fixed batch, both finite, after a step with a
  small learning rate, so callers can assert that training moves the loss.
  """
  rng = jax.random.key(0)
  x = jax.random.normal(rng, (batch, size, size, channels))
  y = jnp.arange(batch) % num_classes
  # One jitted init: eager init compiles every initialiser separately (slow on CPU).
  variables = fast_jit(functools.partial(model.init, train=False))(rng, x)
  logits = fast_jit(functools.partial(model.apply, train=False))(variables, x)
  assert logits.shape == (batch, num_classes), logits.shape
  assert np.all(np.isfinite(np.asarray(logits)))
  params = variables["params"]
  extra = {k: v for k, v in variables.items() if k != "params"}
  tx = optax.sgd(0.01)
  opt_state = tx.init(params)

  def loss_fn(p):
    out, new_state = model.apply({"params": p, **extra}, x, train=True,
                                 mutable=["batch_stats", "aux_logits", "intermediates"],
                                 rngs={"dropout": jax.random.key(1)})
    return optax.softmax_cross_entropy_with_integer_labels(out.astype(jnp.float32), y).mean()

  @fast_jit
  def step(p, o):
    loss, g = jax.value_and_grad(loss_fn)(p)
    u, o = tx.update(g, o, p)
    return optax.apply_updates(p, u), o, loss

  params, opt_state, loss0 = step(params, opt_state)
  _, _, loss1 = step(params, opt_state)
  assert np.isfinite(loss0) and np.isfinite(loss1), (loss0, loss1)
  return float(loss0), float(loss1)
