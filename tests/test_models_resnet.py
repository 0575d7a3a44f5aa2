import jax
import jax.numpy as jnp
import pytest

from cnn_jax import models
from model_testing import assert_param_count, forward_and_train_step

# ../shared/reference/architectures.md (torchvision, projection shortcuts).
RESNET_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


@pytest.mark.parametrize("name,expected", sorted(RESNET_PARAMS.items()))
def test_resnet_param_counts(name, expected):
  assert_param_count(name, expected)


def test_v1_has_same_params_and_fewer_macs_than_v15():
  from cnn_jax.models import summary
  assert summary.count_params("resnet50", downsample_in_3x3=False) == RESNET_PARAMS["resnet50"]
  v1 = summary.count_macs("resnet50", downsample_in_3x3=False)
  v15 = summary.count_macs("resnet50")
  assert v1 < v15
  assert abs(v15 / 1e9 - 4.09) < 0.01  # torchvision's published GFLOPS (MACs) for v1.5


def test_small_stem_keeps_resolution():
  model = models.create("resnet18", num_classes=10, stem="small")
  x = jnp.zeros((1, 28, 28, 1))
  variables = model.init(jax.random.key(0), x, train=False)
  _, state = model.apply(variables, x, train=False, mutable=["intermediates"])
  assert state["intermediates"]["stem"][0].shape == (1, 28, 28, 64)
  assert state["intermediates"]["stage4"][0].shape == (1, 4, 4, 512)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_train_step(name):
  model = models.create(name, num_classes=10, width=8)
  forward_and_train_step(model, size=32, num_classes=10)


def test_bfloat16_compute_keeps_float32_params():
  model = models.create("resnet18", num_classes=10, dtype=jnp.bfloat16, width=8)
  x = jnp.zeros((2, 32, 32, 3))
  variables = model.init(jax.random.key(0), x, train=False)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
  assert model.apply(variables, x, train=False).dtype == jnp.bfloat16
