"""Unit tests of the trainer's pieces: schedules, optimisers, loss, loss scaling, eval padding."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from model_testing import fast_jit
from cnn_jax.train import optimizers
from cnn_jax.train.steps import cross_entropy, topk_correct


def cfg(**changes):
  c = default.get_config()
  c.update(changes)
  return c


def test_step_schedule_drops_at_epochs_after_warmup():
  c = cfg(learning_rate=0.4, lr_schedule="step", lr_decay_epochs=(30, 60), warmup_epochs=5)
  s = optimizers.learning_rate_schedule(c, steps_per_epoch=10, total_steps=900)
  assert float(s(0)) == 0.0 and np.isclose(float(s(25)), 0.2)
  assert np.isclose(float(s(50)), 0.4) and np.isclose(float(s(299)), 0.4)
  assert np.isclose(float(s(300)), 0.04) and np.isclose(float(s(600)), 0.004)


def test_exponential_staircase_schedule():
  c = cfg(learning_rate=0.045, lr_schedule="exponential", lr_decay_factor=0.94,
          lr_decay_every_epochs=2)
  s = optimizers.learning_rate_schedule(c, steps_per_epoch=100, total_steps=10_000)
  assert np.isclose(float(s(199)), 0.045) and np.isclose(float(s(200)), 0.045 * 0.94)
  assert np.isclose(float(s(1000)), 0.045 * 0.94**5)


def test_cosine_ends_at_zero():
  s = optimizers.learning_rate_schedule(cfg(lr_schedule="cosine"), 10, 100)
  assert np.isclose(float(s(0)), 0.1) and float(s(100)) < 1e-6


def test_decay_mask_excludes_bn_and_bias():
  params = {"conv": {"kernel": jnp.ones((3, 3, 1, 2))},
            "norm": {"bn": {"scale": jnp.ones(2), "bias": jnp.ones(2)}},
            "fc": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)}}
  mask = optimizers.decay_mask(params, exclude_bn_bias=True)
  assert mask["conv"]["kernel"] and mask["fc"]["kernel"]
  assert not mask["norm"]["bn"]["scale"] and not mask["fc"]["bias"]
  l2 = optimizers.l2_penalty(params, cfg(weight_decay=0.1, weight_decay_exclude_bn_bias=True))
  assert np.isclose(float(l2), 0.5 * 0.1 * (18 + 6))


@pytest.mark.parametrize("name", optimizers.OPTIMIZERS)
def test_every_optimizer_descends(name):
  c = cfg(optimizer=name, learning_rate=0.05, rmsprop_eps=1e-3, weight_decay=1e-4,
          weight_decay_mode="decoupled", grad_clip_norm=1.0)
  tx = optimizers.create_optimizer(c, optimizers.learning_rate_schedule(c, 10, 100))
  w = {"w": jnp.array([3.0, -2.0])}
  state = tx.init(w)
  loss = lambda p: jnp.sum(p["w"] ** 2)
  start = float(loss(w))
  for _ in range(20):
    g = jax.grad(loss)(w)
    u, state = tx.update(g, state, w)
    w = jax.tree.map(lambda a, b: a + b, w, u)
  assert float(loss(w)) < start


def test_label_smoothing_and_float32_loss():
  logits = jnp.array([[10.0, 0.0, 0.0]], jnp.bfloat16)
  hard = cross_entropy(logits, jnp.array([0]), 3)
  smooth = cross_entropy(logits, jnp.array([0]), 3, label_smoothing=0.1)
  assert hard.dtype == jnp.float32 and float(smooth[0]) > float(hard[0])


def test_topk():
  logits = jnp.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]])
  np.testing.assert_array_equal(topk_correct(logits, jnp.array([2, 0]), 1), [0.0, 1.0])
  np.testing.assert_array_equal(topk_correct(logits, jnp.array([2, 0]), 2), [1.0, 1.0])


def test_float16_step_with_overflowing_gradients_is_skipped():
  """float16 compute: a batch whose gradients overflow leaves params, optimiser and
  BatchNorm state unchanged and halves the loss scale; a normal batch then updates."""
  import functools
  from configs import fashion_mnist
  from cnn_jax import models
  from cnn_jax.train.state import TrainState
  from cnn_jax.train.steps import train_step
  c = fashion_mnist.get_config()
  c.dtype = "float16"
  model = models.create("resnet18", num_classes=10, dtype=jnp.float16, stem="small",
                        width=4, stage_sizes=(1, 1, 1, 1))
  x = jnp.ones((4, 8, 8, 1), jnp.float32)
  # Jitted init (eager init compiles each initialiser on its own) and fast compiles.
  variables = fast_jit(functools.partial(model.init, train=False))(jax.random.key(0), x)
  state = TrainState.create(variables, optax.sgd(0.1), use_ema=False, loss_scaling=True)
  step = fast_jit(functools.partial(train_step, apply_fn=model.apply, config=c,
                                    num_classes=10))
  labels = jnp.array([0, 1, 2, 3])
  overflow = {"image": jnp.full((4, 8, 8, 1), 6e4, jnp.float32), "label": labels}
  skipped, _ = step(state, overflow, jax.random.key(1))
  assert float(skipped.loss_scale.scale) == 2.0**14  # halved
  for a, b in zip(jax.tree.leaves((skipped.params, skipped.batch_stats)),
                  jax.tree.leaves((state.params, state.batch_stats))):
    np.testing.assert_array_equal(a, b)
  normal = {"image": jax.random.normal(jax.random.key(2), (4, 8, 8, 1)), "label": labels}
  updated, metrics = step(skipped, normal, jax.random.key(1))
  assert np.isfinite(float(metrics["loss"]))
  assert float(updated.loss_scale.scale) == 2.0**14 and int(updated.loss_scale.fin_steps) == 1
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(updated.params),
                                                      jax.tree.leaves(skipped.params)))



def test_eval_step_compiles_without_ynnpack_fusions():
  """On CPU the eval step (forward only) leaves out YNNPACK's fusions, which swallowed
  VGG's whole forward pass (cnn_jax/platform.py: 28x slower at 224 px); the same forward
  program with the process's settings has them. A tiny VGG-11, compiled, not run."""
  from cnn_jax import models, parallel, platform
  from cnn_jax.train.state import TrainState
  from cnn_jax.train.steps import jit_eval
  if platform.forward_compiler_options("cpu") is None:
    pytest.skip("this jaxlib has no YNNPACK fusion option (cnn_jax/platform.py)")
  assert platform.forward_compiler_options("gpu") is None
  model = models.create("vgg11", num_classes=10, width_multiplier=0.25, fc_window=1,
                        fc_features=(64, 64))
  x = jnp.zeros((2, 32, 32, 3))
  variables = jax.eval_shape(lambda k: model.init(k, x, train=False), jax.random.key(0))
  state = jax.eval_shape(lambda v: TrainState.create(v, optax.sgd(0.1), use_ema=False),
                         variables)
  batch = {"image": x, "label": jnp.zeros((2,), jnp.int32), "mask": jnp.ones((2,))}
  mesh = parallel.make_mesh(jax.devices()[:1])
  rep = parallel.replicated(mesh)
  eval_fn = jit_eval(model.apply, 10, rep, parallel.batch_sharding(mesh), rep)
  assert "__ynn_fusion" not in eval_fn.lower(state, batch).compile().as_text()
  forward = jax.jit(lambda v, x: model.apply(v, x, train=False))
  assert "__ynn_fusion" in forward.lower(variables, x).compile().as_text()


def test_cpu_device_flags():
  """CNN_JAX_CPU_DEVICES=N splits the host CPU into N single-threaded devices; an explicit
  device count in XLA_FLAGS (the tests', the user's) wins; a bad value is a ValueError."""
  from cnn_jax.platform import cpu_device_flags
  assert cpu_device_flags("", "--a") == "--a"
  assert cpu_device_flags("1", "--a") == "--a"
  assert cpu_device_flags(" 2 ", "--a") == ("--a --xla_force_host_platform_device_count=2 "
                                            "--xla_cpu_multi_thread_eigen=false")
  assert cpu_device_flags("4", "") == ("--xla_force_host_platform_device_count=4 "
                                       "--xla_cpu_multi_thread_eigen=false")
  kept = "--xla_force_host_platform_device_count=8"
  assert cpu_device_flags("2", kept) == kept
  for bad in ("0", "-2", "two", "1.5", "\u00b2"):
    with pytest.raises(ValueError, match="CNN_JAX_CPU_DEVICES"):
      cpu_device_flags(bad, "")


@pytest.mark.parametrize("value,expected",
                         [("2", "devices 2"), ("x", "error: CNN_JAX_CPU_DEVICES='x'")])
def test_cpu_devices_variable_in_a_fresh_process(value, expected):
  """What an entry point's `platform.configure_cpu()` makes of the variable before JAX
  starts: two CPU devices, or one error line and exit status 1."""
  import os
  import subprocess
  import sys
  from conftest import ROOT
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env.update(CNN_JAX_CPU_DEVICES=value, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  code = ("from cnn_jax import platform; platform.configure_cpu(); import jax; "
          "print('devices', jax.device_count())")
  proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                        text=True, timeout=120)
  if value == "2":
    assert proc.returncode == 0 and proc.stdout.strip() == expected, proc.stderr[-2000:]
  else:
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        proc.stderr.strip()] and proc.stderr.startswith(expected), proc.stderr


@pytest.mark.parametrize("group_elements", [1, 5, 12, 1 << 24])
@pytest.mark.parametrize("bad,where", [(None, None), (np.nan, "a"), (np.inf, "c"),
                                       (-np.inf, "d"), (np.nan, "f"), (np.inf, "g")])
def test_all_finite_finds_any_non_finite_element_in_any_grouping(bad, where, group_elements):
  """Leaves of 3, 4, 9 and 2 elements (groups of 1 element keep each leaf alone, 5 and 12
  concatenate some, the default all) and one as large as FSDP shards (checked by itself);
  integer leaves are not checked."""
  from cnn_jax import parallel
  from cnn_jax.train.steps import all_finite
  tree = {"a": np.ones(3, np.float32), "b": {"c": np.ones((2, 2), np.float32),
                                             "d": np.ones((3, 3), np.float32)},
          "e": np.full(2, 7, np.int32), "f": np.ones(2, np.float32),
          "g": np.ones(parallel.FSDP_MIN_SIZE, np.float32)}
  if bad is not None:
    leaf = tree[where] if where in tree else tree["b"][where]
    leaf.reshape(-1)[-1] = bad
  assert bool(all_finite(tree, group_elements=group_elements)) == (bad is None)


def test_all_finite_of_a_tree_without_floating_leaves_is_true():
  from cnn_jax.train.steps import all_finite
  assert bool(all_finite({})) and bool(all_finite({"n": np.arange(3)}))
