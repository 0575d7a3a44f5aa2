"""Our side: the trainer's jitted train step (or eval step) on a synthetic batch.

Import after the process's CPU settings are decided (`cnn_jax.platform.configure_cpu()`
or, for the plain path, CNN_JAX_CPU_TUNING=0 and each of
`platform.CPU_GRADIENT_VARIABLES` = 0 in the environment): importing this module starts JAX.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import types

import jax
import numpy as np

from cnn_jax.benchmark import peaks, timing


class PlainConfig(dict):
  """A dict with attribute access and the few ConfigDict methods the trainer calls."""

  def __getattr__(self, name):
    try:
      return self[name]
    except KeyError:
      raise AttributeError(name) from None

  def __setattr__(self, name, value):
    self[name] = value

  def __setitem__(self, name, value):
    super().__setitem__(name, PlainConfig(value) if type(value) is dict else value)

  def to_dict(self) -> dict:
    return {k: v.to_dict() if isinstance(v, PlainConfig) else v for k, v in self.items()}


def _configs_default_path() -> str:
  spec = importlib.util.find_spec("configs.default")
  if spec is not None and spec.origin:
    return spec.origin
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  return os.path.join(root, "configs", "default.py")


def default_config():
  """configs/default.py's `get_config()`: a ConfigDict, or without ml_collections the same
  fields in a PlainConfig (the file is read with a stand-in `ml_collections`)."""
  if importlib.util.find_spec("ml_collections") is not None:
    from configs import default
    return default.get_config()
  stand_in = types.ModuleType("ml_collections")
  stand_in.ConfigDict = PlainConfig
  stand_in.config_dict = types.SimpleNamespace(placeholder=lambda *_, **__: None)
  namespace = {"__name__": "cnn_jax_benchmark_default_config"}
  had, previous = "ml_collections" in sys.modules, sys.modules.get("ml_collections")
  sys.modules["ml_collections"] = stand_in
  try:
    path = _configs_default_path()
    with open(path) as f:
      exec(compile(f.read(), path, "exec"), namespace)
    return namespace["get_config"]()
  finally:
    if had:
      sys.modules["ml_collections"] = previous
    else:
      del sys.modules["ml_collections"]


def build_config(model: str, batch_size: int, image_size: int, dtype: str = "float32",
                 model_kwargs: dict | None = None, fields: dict | None = None):
  """The trainer's config for a benchmark: defaults plus these settings. An unknown field
  in `fields` is a ValueError (configs/default.py lists them)."""
  config = default_config()
  config.model, config.batch_size, config.eval_batch_size = model, batch_size, batch_size
  config.image_size, config.dtype = image_size, dtype
  config.model_kwargs = dict(model_kwargs or {})
  for key, value in (fields or {}).items():
    if key not in config:
      raise ValueError(f"--set {key}: no such config field (configs/default.py lists them)")
    config[key] = value
  return config


def synthetic_batch(batch_size: int, image_size: int, channels: int, num_classes: int,
                    seed: int = 0) -> dict[str, np.ndarray]:
  """Normal-noise images (already 'normalised', as the pipeline delivers them), random
  labels and an all-ones eval mask."""
  rng = np.random.default_rng(seed)
  return {"image": rng.standard_normal((batch_size, image_size, image_size, channels),
                                      dtype=np.float32),
          "label": rng.integers(0, num_classes, batch_size).astype(np.int32),
          "mask": np.ones(batch_size, np.float32)}


def _flops(compiled) -> float | None:
  try:
    cost = compiled.cost_analysis()
  except Exception:  # noqa: BLE001 — not every backend offers it
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  flops = (cost or {}).get("flops")
  return float(flops) if flops and flops > 0 else None


def _peak_memory() -> tuple[int, str]:
  stats = jax.local_devices()[0].memory_stats() or {}
  if stats.get("peak_bytes_in_use"):
    return int(stats["peak_bytes_in_use"]), "device"
  return timing.process_max_rss(), "process_max_rss"


def cpu_settings() -> dict:
  """Which of the package's CPU settings this process runs with."""
  from cnn_jax import platform
  from cnn_jax.layers import depthwise, fence, patches, pointwise, pooling
  return {"xla_flag": platform.YNN_FLAG in os.environ.get("XLA_FLAGS", ""),
          "malloc": platform.cpu_tuning_enabled(),
          "inline_dispatch": not jax.config.read("jax_cpu_enable_async_dispatch"),
          "depthwise_vjp": depthwise.enabled(),
          "pointwise_vjp": pointwise.enabled(),
          "patches_conv": patches.enabled(),
          "fenced_vjp": fence.enabled(),
          "maxpool_vjp": pooling.max_pool_vjp_enabled()}


def measure(config, mode: str = "train", steps: int = 10, warmup: int = 2,
            num_classes: int = 1000, channels: int = 3) -> dict:
  """Compiles the trainer's train step (mode 'train') or eval step ('infer') for
  `config` and times `steps` calls after `warmup` untimed ones, each call waited for."""
  from cnn_jax import parallel
  from cnn_jax.train.loop import create_model, create_train_state
  from cnn_jax.train.steps import jit_steps

  if mode not in ("train", "infer"):
    raise ValueError(f"unknown mode {mode!r}; choose train or infer")
  mesh = parallel.make_mesh()
  if config.batch_size % jax.device_count():
    raise ValueError(f"batch size {config.batch_size} is not a multiple of the "
                     f"{jax.device_count()} devices")
  model = create_model(config, num_classes)
  # The schedule's length only sets the learning rate's value, not the work of a step.
  state, shardings, _ = create_train_state(
      config, model, mesh, (config.image_size, config.image_size, channels),
      steps_per_epoch=1000, total_steps=10_000)
  train_fn, eval_fn = jit_steps(model.apply, config, num_classes, shardings,
                                parallel.batch_sharding(mesh), parallel.replicated(mesh))
  batch = synthetic_batch(config.batch_size, config.image_size, channels, num_classes)
  if mode == "train":
    del batch["mask"]
  batch = parallel.global_batch(mesh, batch)
  rng = jax.random.key(config.seed + 1)

  t0 = time.perf_counter()
  lowered = train_fn.lower(state, batch, rng) if mode == "train" else eval_fn.lower(state, batch)
  lower_seconds = time.perf_counter() - t0  # Python tracing + lowering to StableHLO
  compiled = lowered.compile()
  compile_seconds = time.perf_counter() - t0

  if mode == "train":
    def step():
      nonlocal state
      state, metrics = compiled(state, batch, rng)  # the state is donated, as in the loop
      jax.block_until_ready((state, metrics))
  else:
    def step():
      jax.block_until_ready(compiled(state, batch))

  times = timing.time_steps(step, steps, warmup)
  flops = _flops(compiled)
  memory, memory_source = _peak_memory()
  device = jax.devices()[0]
  result = timing.summary(times, config.batch_size)
  gflops_per_image = flops / config.batch_size / 1e9 if flops else None
  mfu = peaks.mfu(result["images_per_second"], flops / config.batch_size if flops else None,
                  device.device_kind, config.dtype, jax.device_count())
  return {**result, "compile_seconds": compile_seconds, "lower_seconds": lower_seconds,
          "peak_memory_bytes": memory,
          "peak_memory_source": memory_source, "gflops_per_image": gflops_per_image,
          "mfu": mfu, "backend": jax.default_backend(), "device_kind": device.device_kind,
          "devices": jax.device_count(), "jax_version": jax.__version__,
          "cpu_settings": cpu_settings(),
          "compile_cache_dir": jax.config.jax_compilation_cache_dir or None}
