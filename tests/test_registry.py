"""The registry contract other code relies on."""

import functools

import jax
import jax.numpy as jnp
import pytest

from cnn_jax import models
from model_testing import fast_jit


def test_names_sorted_and_nonempty():
  names = models.names()
  assert names == sorted(names) and "resnet50" in names


def test_unknown_name_suggests_closest():
  with pytest.raises(ValueError, match="resnet50"):
    models.create("resnet5O")
  with pytest.raises(ValueError, match="unknown model"):
    models.spec("no_such_net")


def test_unknown_override_lists_fields():
  with pytest.raises(ValueError, match="overridable fields: .*width"):
    models.create("resnet18", widht=3)


def test_spec_fields():
  spec = models.spec("resnet50")
  assert spec.input_size == 224 and spec.family == "resnet"
  assert isinstance(spec.input_size, int)
  for name in models.names():
    s = models.spec(name)
    assert isinstance(s.input_size, int) and s.family and len(s.mean) == len(s.std) == 3


def test_apply_contract_logits_and_batch_stats():
  model = models.create("resnet18", num_classes=7, width=8)
  x = jnp.zeros((3, 32, 32, 3))
  variables = fast_jit(functools.partial(model.init, train=False))(jax.random.key(0), x)
  assert set(variables) >= {"params", "batch_stats"}
  logits, updated = fast_jit(functools.partial(model.apply, train=True,
                                               mutable=["batch_stats"]))(variables, x)
  assert logits.shape == (3, 7)
  assert set(updated) == {"batch_stats"}
  _, inter = jax.eval_shape(functools.partial(model.apply, train=False,
                                              mutable=["intermediates"]), variables, x)
  assert {"stem", "stage1", "stage4"} <= set(inter["intermediates"])
