"""DenseNet conversion: torchvision and Keras sources with random weights and random BN
statistics give our logits to 1e-4, at the smallest valid resolution.

Cost on 2 CPU cores is compilation, not arithmetic: a DenseNet has hundreds of distinct
tensor shapes. So both forward passes are jitted whole with XLA's backend optimisation
off (a third of the compile time; the arithmetic is the same), and the Keras models draw
their initial weights from numpy instead of one compiled jax.random program per shape.
"""

import re

import jax
import numpy as np
import pytest

from cnn_jax import convert, models
from convert_testing import (assert_logits_match, input_batch, keras_model, torch_logits,
                             torchvision_model)

TORCHVISION = ["densenet121", "densenet161", "densenet169", "densenet201"]
KERAS = {"densenet121": "DenseNet121", "densenet169": "DenseNet169",
         "densenet201": "DenseNet201"}


FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _compiled(fn, *args):
  return np.asarray(jax.jit(fn).lower(*args).compile(compiler_options=FAST_COMPILE)(*args))


def _ours(result, x):
  model = result.model()
  return _compiled(lambda v, x: model.apply(v, x, train=False), result.variables, x)


def _keras_logits(model, x):
  """`keras_logits` as one jitted program (eager Keras-on-JAX compiles op by op)."""
  trainable = [v.value for v in model.trainable_variables]
  non_trainable = [v.value for v in model.non_trainable_variables]
  return _compiled(lambda t, n, x: model.stateless_call(t, n, x, training=False)[0],
                   trainable, non_trainable, x)


@pytest.fixture
def numpy_keras_init(monkeypatch):
  """Keras initialisers draw from numpy while the test builds its source model."""
  from cnn_jax.convert import keras_module
  keras_module()
  from keras.src import backend
  rng = np.random.default_rng(0)

  def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    return rng.uniform(minval, maxval, shape).astype(dtype or "float32")

  def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    return (mean + stddev * rng.standard_normal(shape)).astype(dtype or "float32")

  def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    z = np.clip(rng.standard_normal(shape), -2.0, 2.0)
    return (mean + stddev * z).astype(dtype or "float32")

  for fn in (uniform, normal, truncated_normal):
    if hasattr(backend.random, fn.__name__):  # else: slower, but still correct
      monkeypatch.setattr(backend.random, fn.__name__, fn)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_densenet_matches(name):
  source = torchvision_model(name)
  size = models.spec(name).min_input_size
  x = input_batch(size)
  result = convert.convert("torchvision", name, source.state_dict())
  assert result.overrides == {}
  assert result.num_classes == 1000
  diff = assert_logits_match(_ours(result, x), torch_logits(source, x))
  print(f"torchvision {name}: max |logit diff| {diff:.3g}")


def test_torchvision_old_dense_layer_keys():
  """Pre-0.3 checkpoints spell 'denselayer1.norm.1.weight'; both spellings convert alike."""
  source = torchvision_model("densenet121", num_classes=10)
  new = source.state_dict()
  old = {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v
         for k, v in new.items()}
  assert "features.denseblock1.denselayer1.norm.1.weight" in old
  a = convert.convert("torchvision", "densenet121", new).variables
  b = convert.convert("torchvision", "densenet121", old).variables
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(u, v)
  assert a.keys() == b.keys()


@pytest.mark.parametrize("name", sorted(KERAS))
def test_keras_densenet_matches(name, numpy_keras_init):
  size = models.spec(name).min_input_size
  source = keras_model(KERAS[name], input_shape=(size, size, 3))
  x = input_batch(size)
  result = convert.convert("keras", name, source)
  assert result.overrides == {"bn_epsilon": pytest.approx(1.001e-5)}
  assert result.mean == models.IMAGENET_MEAN and result.std == models.IMAGENET_STD
  diff = assert_logits_match(_ours(result, x), _keras_logits(source, x))
  print(f"keras {name}: max |logit diff| {diff:.3g}")


def test_wrong_variant_is_a_clear_error():
  """densenet121 weights named as densenet169: the missing 25th layer of block 3 is named."""
  state = torchvision_model("densenet121").state_dict()
  with pytest.raises(KeyError, match=r"denseblock3\.denselayer25"):
    convert.convert("torchvision", "densenet169", state)
  # ... and the other way round: the first mis-shaped tensor is named.
  state = torchvision_model("densenet169").state_dict()
  with pytest.raises(ValueError, match=r"transition3/.*ours is \(1024,\)"):
    convert.convert("torchvision", "densenet121", state)
