import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import models
from cnn_jax.layers import DropPath
from cnn_jax.models import efficientnet, summary
from model_testing import abstract_train_step, assert_param_count, forward_and_train_step

# torchvision's published counts (docs/parameter_counts.md lists each with its source).
EFFICIENTNET_PARAMS = {
    "efficientnet_b0": 5_288_548,
    "efficientnet_b1": 7_794_184,
    "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232,
    "efficientnet_b4": 19_341_616,
    "efficientnet_b5": 30_389_784,
    "efficientnet_b6": 43_040_704,
    "efficientnet_b7": 66_347_960,
}
RESOLUTIONS = (224, 240, 260, 300, 380, 456, 528, 600)


@pytest.mark.parametrize("name,expected", sorted(EFFICIENTNET_PARAMS.items()))
def test_efficientnet_param_counts(name, expected):
  assert_param_count(name, expected)


def test_registry_metadata():
  for i, res in enumerate(RESOLUTIONS):
    spec = models.spec(f"efficientnet_b{i}")
    assert spec.input_size == res
    assert spec.crop_fraction == pytest.approx(res / (res + 32))
    assert spec.interpolation == "bicubic"


def test_compound_scaling_rules():
  # round_filters: multiples of 8, nearest, but never more than 10% down.
  assert efficientnet.round_filters(32, 1.1) == 32     # 35.2 -> 32 (9% down)
  assert efficientnet.round_filters(16, 1.8) == 32     # 28.8 -> 32 (nearest)
  assert efficientnet.round_filters(1280, 2.0) == 2560
  assert efficientnet.round_repeats(3, 1.1) == 4       # ceil(3.3)
  assert efficientnet.round_repeats(1, 3.1) == 4
  # B7 = B0's table scaled: 55 blocks (1+2+2+3+3+4+1 repeats scaled by 3.1 and ceiled).
  x = jnp.zeros((1, 64, 64, 3))
  b7 = models.create("efficientnet_b7")
  params = jax.eval_shape(functools.partial(b7.init, train=False), jax.random.key(0), x)
  blocks = [k for k in params["params"] if k.startswith("block")]
  assert len(blocks) == sum(efficientnet.round_repeats(s.repeats, 3.1)
                            for s in efficientnet.B0_STAGES) == 55


def test_efficientnet_b0_macs_match_torchvision():
  assert abs(summary.count_macs("efficientnet_b0") / 1e9 - 0.39) < 0.005


def test_drop_path_drops_whole_examples_and_keeps_the_mean():
  x = jnp.ones((4000, 2, 2, 3))
  y = DropPath(0.2).apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)})
  per_example = np.asarray(y[:, 0, 0, 0])
  assert set(np.round(np.unique(per_example), 4)) == {0.0, 1.25}
  assert np.all(np.asarray(y) == per_example[:, None, None, None])
  assert abs(per_example.mean() - 1.0) < 0.05
  assert np.all(DropPath(0.2).apply({}, x, deterministic=True) == x)


def test_shallow_efficientnet_train_step(monkeypatch):
  """B0 with the first three rows of Table 1 (a module constant, replaced for the test):
  five MBConvs with expansion 1 and 6, 3x3 and 5x5 depthwise convs, strides 1 and 2, and
  two shortcuts with stochastic depth. Every kind of B0's blocks, compiled in 6.5 s on 2
  cores; one MBConv per stage (depth_coefficient 0.3: eight blocks) took 11-16 s. The
  whole networks are traced in test_efficientnet_train_step."""
  rows = efficientnet.B0_STAGES[:3]
  assert {(r.expansion, r.kernel_size) for r in rows} == {
      (r.expansion, r.kernel_size) for r in efficientnet.B0_STAGES}
  assert {r.strides for r in rows} == {1, 2} and min(r.repeats for r in rows[1:]) == 2
  monkeypatch.setattr(efficientnet, "B0_STAGES", rows)
  model = models.create("efficientnet_b0", num_classes=10, depth_coefficient=1.0)
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
  assert len([k for k in params if k.startswith("block")]) == 5  # the shortened table
  forward_and_train_step(model, size=32, num_classes=10)


# Every scaling traced (init, forward, gradient); compiling B0-B2 took 18-26 s each on 2
# cores (B3-B7 1.5-3 minutes) and proves nothing more about shapes. The compiled numerics
# of every block are test_shallow_efficientnet_train_step's, and B0's compiled step is
# test_efficientnet_b0_compiled_train_step (make test-all). B3-B7 differ from B0-B2 only
# in the scaling data (checked by the parameter counts): traced in make test-all.
@pytest.mark.parametrize("name", [
    pytest.param(f"efficientnet_b{i}", marks=[pytest.mark.full_size] if i >= 3 else [])
    for i in range(8)])
def test_efficientnet_train_step(name):
  abstract_train_step(models.create(name, num_classes=10), size=32, num_classes=10, batch=4)


@pytest.mark.full_size
def test_efficientnet_b0_compiled_train_step():
  # Batch 4: with batch 2, BatchNorm over the 1x1 maps of a 32 px input sees two values
  # per channel, and the first SGD step can blow up (seen as NaN for B2-B4).
  forward_and_train_step(models.create("efficientnet_b0", num_classes=10), size=32,
                         num_classes=10, batch=4)
