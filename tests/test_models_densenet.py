import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnn_jax import models
from cnn_jax.models import summary
from model_testing import (abstract_train_step, assert_param_count, fast_jit,
                           forward_and_train_step)

# torchvision's published counts; densenet264 derived from Huang et al. 2017, Table 1
# (docs/parameter_counts.md lists each with its source).
DENSENET_PARAMS = {
    "densenet121": 7_978_856,
    "densenet161": 28_681_000,
    "densenet169": 14_149_480,
    "densenet201": 20_013_928,
    "densenet264": 33_337_704,
}

# A DenseNet-BC small enough to train in a test: 2 layers per block, k=8.
TINY = dict(block_sizes=(2, 2, 2, 2), growth_rate=8)


@pytest.mark.parametrize("name,expected", sorted(DENSENET_PARAMS.items()))
def test_densenet_param_counts(name, expected):
  assert_param_count(name, expected)


def test_remat_keeps_params():
  assert summary.count_params("densenet121", remat=True) == DENSENET_PARAMS["densenet121"]


def test_densenet121_macs_match_torchvision():
  assert abs(summary.count_macs("densenet121") / 1e9 - 2.83) < 0.005


def test_tiny_densenet_train_step_and_intermediates():
  model = models.create("densenet121", num_classes=10, **TINY)
  forward_and_train_step(model, size=32, num_classes=10)
  x = jnp.zeros((1, 64, 64, 3))
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
  _, state = jax.eval_shape(
      functools.partial(model.apply, train=False, mutable=["intermediates"]), variables, x)
  inter = state["intermediates"]
  assert inter["stem"][0].shape == (1, 16, 16, 16)       # 2k channels after 7x7/2, pool/2
  assert inter["stage1"][0].shape == (1, 16, 16, 32)     # + 2 layers x k
  assert inter["stage2"][0].shape == (1, 8, 8, 32)       # compression 0.5, then + 2k
  assert inter["stage4"][0].shape == (1, 2, 2, 32)


# Every depth traced (init, forward, gradient); compiling took 28 s for densenet121 and
# 2-4 minutes for the deeper ones on 2 cores, and proves nothing more about shapes. The
# compiled numerics of the blocks are test_tiny_densenet_train_step_and_intermediates'.
# The deeper ones differ only in the block counts (checked by the parameter counts):
# traced in make test-all.
@pytest.mark.parametrize("name", [
    pytest.param(n, marks=[] if n == "densenet121" else [pytest.mark.full_size])
    for n in sorted(DENSENET_PARAMS)])
def test_densenet_train_step(name):
  abstract_train_step(models.create(name, num_classes=10), size=32, num_classes=10)


def test_remat_gives_same_loss_and_gradients():
  """Two dense blocks of two layers (a layer reading one map and one reading several, in
  blocks on either side of a transition) are every kind of rematerialised layer: TINY's
  four blocks took 8-10 s on 2 cores to compile twice (jax.jit), these 3 s (fast_jit)."""
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  y = jnp.array([1, 3])
  two_blocks = {**TINY, "block_sizes": (2, 2)}
  plain = models.create("densenet121", num_classes=5, **two_blocks)
  remat = models.create("densenet121", num_classes=5, remat=True, **two_blocks)
  variables = fast_jit(functools.partial(plain.init, train=False))(jax.random.key(0), x)
  remat_variables = jax.eval_shape(functools.partial(remat.init, train=False),
                                   jax.random.key(0), x)
  assert (jax.tree.structure(remat_variables) == jax.tree.structure(variables))

  def loss_and_grads(model):
    def loss_fn(params):
      logits, state = model.apply({**variables, "params": params}, x, train=True,
                                  mutable=["batch_stats"])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, state["batch_stats"]
    return fast_jit(jax.value_and_grad(loss_fn, has_aux=True))(variables["params"])

  (loss0, stats0), grads0 = loss_and_grads(plain)
  (loss1, stats1), grads1 = loss_and_grads(remat)
  np.testing.assert_allclose(loss1, loss0, rtol=1e-6)
  # Same maths, different fusion and summation order: float32 rounding only, judged
  # against the largest gradient (BN-cancelled gradients of early layers are pure noise).
  scale = max(float(np.abs(g).max()) for g in jax.tree.leaves(grads0))
  for a, b in zip(jax.tree.leaves(grads0), jax.tree.leaves(grads1)):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * scale)
  for a, b in zip(jax.tree.leaves(stats0), jax.tree.leaves(stats1)):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
