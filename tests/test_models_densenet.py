import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnn_jax import layers, models
from cnn_jax.layers import dense, depthwise, patches
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


def test_transition_pools_before_its_conv_with_the_same_result():
  """The transition's 2x2 average pool runs before its 1x1 convolution (dense.py): the
  output, the running averages and every gradient equal the paper's order's (float64);
  the pool-first program's convolution reads a quarter of the pixels."""
  transition = layers.Transition(4, dtype=jnp.float64)
  with jax.enable_x64():
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 5), jnp.float64)
    g = jax.random.normal(jax.random.key(1), (2, 3, 3, 4), jnp.float64)
    variables = transition.init(jax.random.key(2), x, train=False)
    variables = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64) + 0.25, variables)

    results, macs = [], []
    for first in (False, True):
      def run(x, params):  # a new function for each order: JAX caches traces per function
        y, updates = transition.apply({**variables, "params": params}, x, train=True,
                                      mutable=["batch_stats"])
        return jnp.sum(y * g), updates

      with dense.pool_first(first):
        results.append(jax.grad(run, argnums=(0, 1), has_aux=True)(x, variables["params"]))
        macs.append(summary._jaxpr_macs(jax.make_jaxpr(run)(x, variables["params"]).jaxpr))
  for got, want in zip(jax.tree.leaves(results[1]), jax.tree.leaves(results[0])):
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
  assert macs == [2 * 6 * 6 * 5 * 4, 2 * 3 * 3 * 5 * 4]


def test_densenet121_runs_a_quarter_of_its_transition_macs():
  """count_macs traces the paper's order; the model as it runs saves three quarters of
  the three transitions' 1x1 convolutions (each 56*56*256*128 MACs at 224 px)."""
  model = models.create("densenet121")
  x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
  with depthwise.custom_vjp(False), patches.custom_path(False):
    jaxpr = jax.make_jaxpr(functools.partial(model.apply, train=False))(variables, x)
  assert summary.count_macs("densenet121") - summary._jaxpr_macs(jaxpr.jaxpr) == \
      3 * 56 * 56 * 256 * 128 * 3 // 4


def test_the_environment_variable_switches_pool_first_off(monkeypatch):
  transition, x = layers.Transition(4), jnp.ones((2, 6, 6, 5))
  variables = jax.eval_shape(functools.partial(transition.init, train=False),
                             jax.random.key(0), x)
  macs = lambda: summary._jaxpr_macs(jax.make_jaxpr(  # a new function each call
      lambda v, x: transition.apply(v, x, train=False))(variables, x).jaxpr)
  assert macs() == 2 * 3 * 3 * 5 * 4
  monkeypatch.setenv("CNN_JAX_POOL_FIRST", "0")
  assert macs() == 2 * 6 * 6 * 5 * 4


def test_pooling_after_a_conv_larger_than_1x1_is_one_error():
  block = layers.NormActConv(4, 3, pool=2)
  with pytest.raises(ValueError, match="pool=2 needs kernel_size=1, got 3"):
    block.init(jax.random.key(0), jnp.ones((1, 4, 4, 2)), train=False)
