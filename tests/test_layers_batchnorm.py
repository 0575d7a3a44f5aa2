"""The block library's BatchNorm (one per-channel scale and shift) against
flax.linen.BatchNorm: the same variables, outputs, running averages and gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.layers import BatchNorm
from model_testing import fast_jit


class _Flax(nn.Module):
  """flax.linen.BatchNorm under the same names (`bn` inside the block)."""
  momentum: float = 0.9
  epsilon: float = 1e-5
  use_scale: bool = True
  use_bias: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train):
    return nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                        epsilon=self.epsilon, use_scale=self.use_scale,
                        use_bias=self.use_bias, dtype=self.dtype, param_dtype=jnp.float32,
                        name="bn")(x)


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-5), ("bfloat16", 2e-2)])
@pytest.mark.parametrize("use_scale,use_bias", [(True, True), (False, True), (True, False)])
def test_batchnorm_matches_flax(dtype, tol, use_scale, use_bias):
  kw = dict(momentum=0.8, epsilon=1e-3, use_scale=use_scale, use_bias=use_bias,
            dtype=jnp.dtype(dtype))
  ours, theirs = BatchNorm(**kw), _Flax(**kw)
  rng = np.random.default_rng(0)
  # A mean far from zero, per channel: where a one-pass variance loses digits first.
  x = jnp.asarray(rng.standard_normal((4, 5, 6, 3)) * [1.0, 0.1, 3.0] + [0.0, 4.0, -20.0],
                  jnp.float32).astype(dtype)
  g = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)
  variables = theirs.init(jax.random.key(0), x, train=False)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.key(0), x, train=False)) == \
      jax.tree.map(jnp.shape, variables)
  # Parameters and statistics away from their initial values.
  variables = jax.tree.map(
      lambda v: v + jnp.asarray(rng.uniform(0.5, 1.5, v.shape), jnp.float32), variables)

  @fast_jit
  def both(variables, x):
    out = {}
    for name, module in (("ours", ours), ("theirs", theirs)):
      def loss(params, x):
        y, updates = module.apply({**variables, "params": params}, x, train=True,
                                  mutable=["batch_stats"])
        return jnp.sum(y.astype(jnp.float32) * g), (y, updates)
      grads, (y, updates) = jax.grad(loss, argnums=(0, 1), has_aux=True)(
          variables["params"], x)
      evaluated = module.apply(variables, x, train=False)
      out[name] = (y, updates, grads, evaluated)
    return out

  out = both(variables, x)
  for got, want in zip(jax.tree.leaves(out["ours"]), jax.tree.leaves(out["theirs"])):
    assert got.dtype == want.dtype and got.shape == want.shape
    scale = max(float(jnp.abs(want.astype(jnp.float32)).max()), 1.0)
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32),
                               rtol=tol, atol=tol * scale)
  assert out["ours"][0].dtype == jnp.dtype(dtype)


def test_statistics_from_parts_are_the_concatenations():
  """DenseNet's layers pass the maps they concatenate as `parts`: the output, the running
  averages and every gradient (including each part's) equal those of the concatenation."""
  rng = np.random.default_rng(1)
  bn = BatchNorm(momentum=0.8, dtype=jnp.float64)
  with jax.enable_x64():
    parts = [jnp.asarray(rng.standard_normal((4, 5, 6, c)) * (i + 1) + i, jnp.float64)
             for i, c in enumerate((3, 2, 2))]
    g = jnp.asarray(rng.standard_normal((4, 5, 6, 7)), jnp.float64)
    variables = bn.init(jax.random.key(0), jnp.concatenate(parts, -1), train=False)
    variables = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64) + 0.5, variables)

    def run(parts, params, split):
      x = jnp.concatenate(parts, -1)
      y, updates = bn.apply({**variables, "params": params}, x, train=True,
                            parts=parts if split else None, mutable=["batch_stats"])
      return jnp.sum(y * g), updates

    results = [jax.grad(run, argnums=(0, 1), has_aux=True)(parts, variables["params"], split)
               for split in (False, True)]
  for got, want in zip(jax.tree.leaves(results[1]), jax.tree.leaves(results[0])):
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_parts_that_do_not_make_up_the_input_are_one_error():
  x = jnp.ones((2, 3, 3, 4))
  bn = BatchNorm()
  variables = bn.init(jax.random.key(0), x, train=False)
  with pytest.raises(ValueError, match=r"parts with \[2, 1\] channels do not add up to "
                                       r"the input's 4"):
    bn.apply(variables, x, train=True, parts=[x[..., :2], x[..., 2:3]], mutable=True)
