"""Max pooling's CPU gradient (cnn_jax/layers/pooling.py `_max_pool`) against XLA's own
(select_and_scatter): the same numbers, ties included, for every pooling the zoo uses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.layers import pooling
from model_testing import fast_jit

CASES = [
    dict(window=3, stride=2, padding=1),  # ResNet, DenseNet
    dict(window=3, stride=2, padding=0, ceil_mode=True),  # GoogLeNet, ZFNet (Caffe)
    dict(window=3, stride=2, padding="SAME"),  # TF
    dict(window=3, stride=2, padding="VALID"),  # Inception v3 / v4
    dict(window=2, stride=2),  # VGG
    dict(window=3, stride=1, padding=1),  # an Inception module's pool branch
]


@pytest.mark.parametrize("kwargs", CASES, ids=str)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_max_pool_gradient_matches_xla(kwargs, ties, dtype):
  rng = np.random.default_rng(0)
  # Integers in [0, 3): most windows hold their maximum more than once, and XLA gives the
  # gradient to the first in row-major order.
  values = rng.integers(0, 3, (2, 13, 12, 3)) if ties else rng.standard_normal((2, 13, 12, 3))
  x = jnp.asarray(values, dtype)

  def grad():
    return jax.grad(lambda x: jnp.sum(jnp.sin(
        pooling.max_pool(x, **kwargs).astype(jnp.float32))))

  # A new function per trace: JAX reuses the trace of one it has seen.
  forward = lambda: (lambda x: pooling.max_pool(x, **kwargs))
  with pooling.max_pool_vjp(True):
    got = fast_jit(grad())(x)
    assert "name=_max_pool" in str(jax.make_jaxpr(forward())(x))
  with pooling.max_pool_vjp(False):
    want = fast_jit(grad())(x)
    assert "name=_max_pool" not in str(jax.make_jaxpr(forward())(x))
  assert got.dtype == want.dtype == x.dtype
  np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))
  with pooling.max_pool_vjp(True):
    np.testing.assert_array_equal(pooling.max_pool(x, **kwargs),
                                  pooling._reduce_max(x, kwargs["window"], kwargs["stride"],
                                                      _pads(x, kwargs)))


def _pads(x, kwargs):
  with pooling.max_pool_vjp(False):
    jaxpr = jax.make_jaxpr(lambda x: pooling.max_pool(x, **kwargs))(x)
  padding = jaxpr.eqns[-1].params["padding"]
  return tuple(tuple(p) for p in padding[1:3])


def test_the_environment_variable_switches_it_off(monkeypatch):
  x = jnp.ones((1, 8, 8, 2))
  traced = lambda: str(jax.make_jaxpr(lambda x: pooling.max_pool(x, 3, 2, 1))(x))  # new each call
  monkeypatch.delenv("CNN_JAX_MAXPOOL_VJP", raising=False)
  assert "name=_max_pool" in traced()
  monkeypatch.setenv("CNN_JAX_MAXPOOL_VJP", "0")  # as the benchmark's plain path does
  assert "name=_max_pool" not in traced()
