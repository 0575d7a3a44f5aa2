import functools

import jax
import jax.numpy as jnp
import pytest

from cnn_jax import models
from model_testing import abstract_train_step, assert_param_count, forward_and_train_step

# torchvision's published counts, projection shortcuts (docs/parameter_counts.md).
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
  x = jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32)
  # Shapes only: traced (eager init and apply took 4-6 s on 2 cores, op by op).
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
  _, state = jax.eval_shape(
      functools.partial(model.apply, train=False, mutable=["intermediates"]), variables, x)
  assert state["intermediates"]["stem"][0].shape == (1, 28, 28, 64)
  assert state["intermediates"]["stage4"][0].shape == (1, 4, 4, 512)


# Compiled at width 8: resnet18 whole (basic blocks), resnet50's bottleneck blocks with
# stage sizes (2, 1, 1, 1): a projection shortcut at stride 1 (stage 1's first block
# widens 4x) and at stride 2 (stages 2-4), and an identity shortcut (stage 1's second).
# The whole (3, 4, 6, 3) network repeats those blocks: compiled in 8-11 s on 2 cores,
# 4 s shortened; it is traced at full size in test_resnet50_traced_train_step.
@pytest.mark.parametrize("name,overrides", [("resnet18", {}),
                                            ("resnet50", {"stage_sizes": (2, 1, 1, 1)})],
                         ids=["resnet18", "resnet50_stages_2_1_1_1"])
def test_resnet_train_step(name, overrides):
  model = models.create(name, num_classes=10, width=8, **overrides)
  forward_and_train_step(model, size=32, num_classes=10)


def test_resnet50_traced_train_step():
  abstract_train_step(models.create("resnet50"), size=224, num_classes=1000)


def test_bfloat16_compute_keeps_float32_params():
  model = models.create("resnet18", num_classes=10, dtype=jnp.bfloat16, width=8)
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  # Dtypes only: traced (eager init and apply took 6-8 s on 2 cores, op by op).
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
  logits = jax.eval_shape(functools.partial(model.apply, train=False), variables, x)
  assert logits.dtype == jnp.bfloat16


# He et al. 2015, Section 4.2 / Table 6 (0.27M, 0.46M, 0.66M, 0.85M, 1.7M), at 10 classes.
# Option A shortcuts have no parameters, so each plain twin has the same count.
CIFAR_RESNET_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}


@pytest.mark.parametrize("depth,expected", sorted(CIFAR_RESNET_PARAMS.items()))
def test_cifar_resnet_param_counts(depth, expected):
  from cnn_jax.models import resnet
  n = resnet.CIFAR_DEPTHS[depth]
  assert depth == 6 * n + 2
  for name in (f"resnet{depth}", f"plain{depth}"):
    assert_param_count(name, expected, size=32, num_classes=10)
  spec = models.spec(f"resnet{depth}")
  assert (spec.input_size, spec.min_input_size) == (32, 8)
  model = models.create(f"plain{depth}")
  assert (model.stage_sizes, model.width, model.stem, model.shortcut) == ((n,) * 3, 16,
                                                                          "small", "none")


def test_cifar_resnet_on_fashion_mnist_and_min_input():
  model = models.create("resnet20", num_classes=10)
  for shape in [(1, 28, 28, 1), (1, 8, 8, 3)]:
    logits = jax.eval_shape(lambda x: model.init_with_output(
        jax.random.key(0), x, train=False)[0], jax.ShapeDtypeStruct(shape, jnp.float32))
    assert logits.shape == (1, 10)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)),
                                                train=False))
  _, state = jax.eval_shape(lambda v: model.apply(
      v, jnp.zeros((1, 28, 28, 1)), mutable=["intermediates"]), variables)
  sizes = [state["intermediates"][f"stage{i}"][0].shape for i in (1, 2, 3)]
  assert sizes == [(1, 28, 28, 16), (1, 14, 14, 32), (1, 7, 7, 64)]


def test_cifar_resnet_train_step():
  forward_and_train_step(models.create("resnet20", num_classes=10), size=28, num_classes=10,
                         channels=1)


def test_shortcut_options_b_and_c():
  """Section 3.3 / Table 3: B projects where the shape changes, C on every block.

  A 1x1 projection from c_in to c_out channels (no bias) with its BatchNorm has
  c_in * c_out + 2 * c_out parameters (BN's scale and bias; its statistics are not params).
  """
  a = CIFAR_RESNET_PARAMS[20]
  # B on resnet20: stage2_block1 16 -> 32 (512 + 64) and stage3_block1 32 -> 64
  # (2048 + 128): 576 + 2176 = 2752.
  b = a + (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
  assert b == 272_474
  # C adds a projection to the other 7 blocks: 3 in stage1 (16 -> 16: 256 + 32 = 288 each)
  # and 2 each in stage2 (32 -> 32: 1024 + 64 = 1088) and stage3 (64 -> 64: 4096 + 128 =
  # 4224): 864 + 2176 + 8448 = 11488 over B.
  c = b + 3 * (16 * 16 + 2 * 16) + 2 * (32 * 32 + 2 * 32) + 2 * (64 * 64 + 2 * 64)
  assert c == 283_962
  for shortcut, expected in (("projection", b), ("projection_all", c)):
    assert_param_count("resnet20", expected, size=32, num_classes=10, shortcut=shortcut)
  assert a < b < c
  # ResNet-18 C over torchvision's B: the 4 blocks without a projection under B are
  # stage1_block1/2 (64 -> 64: 4096 + 128 = 4224 each), stage2_block2 (128 -> 128: 16384 +
  # 256 = 16640), stage3_block2 (256 -> 256: 65536 + 512 = 66048) and stage4_block2
  # (512 -> 512: 262144 + 1024 = 263168): 354,304 more.
  extra = sum(c_ * c_ + 2 * c_ for c_ in (64, 64, 128, 256, 512))
  assert extra == 354_304
  assert_param_count("resnet18", RESNET_PARAMS["resnet18"] + extra, shortcut="projection_all")


def test_unknown_shortcut_raises():
  model = models.create("resnet20", num_classes=10, shortcut="zeropad")
  with pytest.raises(ValueError, match="unknown shortcut"):
    jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                      train=False))


def test_count_macs_input_channels():
  from cnn_jax.models import summary
  rgb = summary.count_macs("resnet20", size=32, num_classes=10)
  gray = summary.count_macs("resnet20", size=32, channels=1, num_classes=10)
  # Stem 32*32*16*27 = 442,368; stage1: 6 convs of 32*32*16*144 = 14,155,776; stages 2
  # and 3: 16*16*32*144 + 5 * 16*16*32*288 = 8*8*64*288 + 5 * 8*8*64*576 = 12,976,128
  # each; FC 64*10 = 640. Total 40.55M, the figure usually quoted for ResNet-20.
  assert rgb == 442_368 + 14_155_776 + 2 * 12_976_128 + 640 == 40_551_040
  # Only the stem sees the input: two fewer input channels, 32*32*16*9 MACs each.
  assert rgb - gray == 32 * 32 * 16 * 9 * 2
  assert summary.count_params("resnet20", size=32, channels=1, num_classes=10) == (
      CIFAR_RESNET_PARAMS[20] - 16 * 9 * 2)
