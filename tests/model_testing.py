"""Shared checks for model tests: parameter counts, a one-step training smoke test
(compiled, for small models) and its traced twin for full-size models."""

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


def _loss_fn(model, x, y):
  """The cross-entropy of `model` on (x, y) in training mode, as a function of `params`
  and the non-trainable collections."""
  def loss_fn(p, extra):
    out, _ = model.apply({"params": p, **extra}, x, train=True,
                         mutable=["batch_stats", "aux_logits", "intermediates"],
                         rngs={"dropout": jax.random.key(1)})
    return optax.softmax_cross_entropy_with_integer_labels(out.astype(jnp.float32), y).mean()
  return loss_fn


def abstract_train_step(model, size: int, num_classes: int, batch: int = 2,
                        channels: int = 3):
  """`forward_and_train_step` traced, not compiled (`jax.eval_shape`): the full-size
  model initialises, gives (batch, num_classes) float32 logits, and differentiates to a
  float32 gradient of its parameters' tree and shapes, at a fraction of the compile time.
  The compiled numerics of each family's blocks are tested on a small sibling."""
  x = jax.ShapeDtypeStruct((batch, size, size, channels), jnp.float32)
  y = jnp.arange(batch) % num_classes
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
  logits = jax.eval_shape(functools.partial(model.apply, train=False), variables, x)
  assert logits.shape == (batch, num_classes), logits.shape
  params = variables["params"]
  extra = {k: v for k, v in variables.items() if k != "params"}
  loss, grads = jax.eval_shape(
      lambda p, e, x: jax.value_and_grad(_loss_fn(model, x, y))(p, e), params, extra, x)
  assert loss.shape == () and loss.dtype == jnp.float32
  assert jax.tree.structure(grads) == jax.tree.structure(params)
  for g, p in zip(jax.tree.leaves(grads), jax.tree.leaves(params)):
    assert g.shape == p.shape and g.dtype == p.dtype == jnp.float32, (g, p)
  return params


def forward_and_train_step(model, size: int, num_classes: int, batch: int = 2,
                           channels: int = 3):
  """Initialises `model`, checks the forward shape, takes one SGD step; returns losses.

  Returns (loss_before, loss_after) on a fixed batch, both finite, after a step with a
  small learning rate, so callers can assert that training moves the loss.
  """
  rng = jax.random.key(0)
  # Inputs from numpy: eager jax.random / jnp ops would compile a program per shape.
  x = np.random.default_rng(0).standard_normal((batch, size, size, channels), np.float32)
  y = np.arange(batch) % num_classes
  # One jitted init: eager init compiles every initialiser separately (slow on CPU).
  variables = fast_jit(functools.partial(model.init, train=False))(rng, x)
  logits = fast_jit(functools.partial(model.apply, train=False))(variables, x)
  assert logits.shape == (batch, num_classes), logits.shape
  assert np.all(np.isfinite(np.asarray(logits)))
  params = variables["params"]
  extra = {k: v for k, v in variables.items() if k != "params"}
  tx = optax.sgd(0.01)
  opt_state = tx.init(params)

  loss_fn = _loss_fn(model, x, y)

  @fast_jit
  def step(p, o):
    loss, g = jax.value_and_grad(loss_fn)(p, extra)
    u, o = tx.update(g, o, p)
    return optax.apply_updates(p, u), o, loss

  params, opt_state, loss0 = step(params, opt_state)
  _, _, loss1 = step(params, opt_state)
  assert np.isfinite(loss0) and np.isfinite(loss1), (loss0, loss1)
  return float(loss0), float(loss1)
