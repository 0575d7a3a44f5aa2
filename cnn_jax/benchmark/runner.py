"""Runs each side of a benchmark in its own fresh process and puts the results together.

No JAX here: this process only starts workers (`python -m cnn_jax.benchmark --worker
SIDE --settings JSON`), so each worker decides its own XLA flags and malloc settings
before JAX starts. Sides: `ours` (the package's CPU settings unless `Settings.plain`),
`plain` (ours without them), `torchvision`, `keras`.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime
import json
import os
import statistics
import subprocess
import sys
from typing import Callable

RESULT_PREFIX = "RESULT "
SIDES = ("ours", "plain", "torchvision", "keras")


def _split_top_level(text: str) -> list[str]:
  """Splits on the commas outside brackets: 'a=1,b=(1,2)' -> ['a=1', 'b=(1,2)']."""
  items, depth, start = [], 0, 0
  for i, ch in enumerate(text):
    depth += ch in "([{"
    depth -= ch in ")]}"
    if ch == "," and depth == 0:
      items.append(text[start:i])
      start = i + 1
  return items + [text[start:]]


def key_values(text: str, what: str) -> dict:
  """'a=1,b=small,c=(1,2)' -> {'a': 1, 'b': 'small', 'c': (1, 2)} (Python literals where
  they parse, else strings): the --model-kwargs and --set values."""
  out = {}
  for item in filter(None, (t.strip() for t in _split_top_level(text))):
    key, eq, value = item.partition("=")
    if not eq or not key:
      raise ValueError(f"{what} takes KEY=VALUE pairs, not {item!r}")
    try:
      out[key.strip()] = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
      out[key.strip()] = value.strip()
  return out


class BenchmarkError(Exception):
  """A side that failed; the message is one line."""


@dataclasses.dataclass
class Settings:
  model: str
  batch_size: int
  image_size: int
  mode: str = "train"          # train | infer
  dtype: str = "float32"
  steps: int = 10              # timed steps
  warmup: int = 2              # untimed steps before them
  num_classes: int = 1000
  channels: int = 3
  model_kwargs: dict = dataclasses.field(default_factory=dict)
  fields: dict = dataclasses.field(default_factory=dict)  # other configs/default.py fields
  plain: bool = False          # ours without the package's CPU settings
  peer_compile: bool = False   # torchvision: torch.compile the model

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self))

  @classmethod
  def from_json(cls, text: str) -> "Settings":
    values = json.loads(text)
    for key in ("model_kwargs", "fields"):  # JSON made the tuples lists
      values[key] = {k: _tuples(v) for k, v in values[key].items()}
    return cls(**values)


def _tuples(value):
  return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def worker_env(side: str, plain: bool, base: dict | None = None) -> dict:
  """The environment of a side's process: the package's CPU settings only for `ours`
  (not plain); Keras on its JAX backend."""
  from cnn_jax import platform  # jax-free
  env = dict(os.environ if base is None else base)
  if side == "plain" or (side == "ours" and plain) or side == "keras":
    env["CNN_JAX_CPU_TUNING"] = "0"
    env.update(dict.fromkeys(platform.CPU_GRADIENT_VARIABLES, "0"))
    flags = env.get("XLA_FLAGS", "").replace(platform.YNN_FLAG, "").strip()
    if flags:
      env["XLA_FLAGS"] = flags
    else:
      env.pop("XLA_FLAGS", None)
  if side == "keras":
    env["KERAS_BACKEND"] = "jax"
  return env


def run_side(settings: Settings, side: str, timeout: float | None = None,
             env: dict | None = None) -> dict:
  """One side's result dict, measured in a fresh process; BenchmarkError on failure."""
  if side not in SIDES:
    raise BenchmarkError(f"unknown side {side!r}; choose one of {', '.join(SIDES)}")
  command = [sys.executable, "-m", "cnn_jax.benchmark", "--worker", side,
             "--settings", settings.to_json()]
  try:
    proc = subprocess.run(command, env=worker_env(side, settings.plain, env),
                          capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    raise BenchmarkError(f"{side}: no result within {timeout:.0f} s") from None
  lines = [l for l in proc.stdout.splitlines() if l.startswith(RESULT_PREFIX)]
  if proc.returncode == 0 and lines:
    return json.loads(lines[-1][len(RESULT_PREFIX):])
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
  if errors:
    raise BenchmarkError(f"{side}: {errors[-1][len('error: '):]}")
  tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
  raise BenchmarkError(f"{side} worker exited with status {proc.returncode}: {tail}")


def _median(values):
  values = [v for v in values if v is not None]
  return statistics.median(values) if values else None


def compare(settings: Settings, peer: str | None = None, rounds: int = 1,
            on_result: Callable[[str, int, dict], None] | None = None) -> dict:
  """Runs ours (and `peer`) `rounds` times, alternating which goes first, and returns the
  one-line summary: medians over the rounds, the ratio ours / peer and each round's
  figures. `on_result(side, round, result)` sees every result as it comes."""
  started = datetime.datetime.now(datetime.timezone.utc)
  load = os.getloadavg() if hasattr(os, "getloadavg") else None
  ours_side = "plain" if settings.plain else "ours"
  ours, theirs = [], []
  for r in range(rounds):
    order = [ours_side] + ([peer] if peer else [])
    for side in order if r % 2 == 0 else order[::-1]:
      result = run_side(settings, side)
      (ours if side == ours_side else theirs).append(result)
      if on_result:
        on_result(side, r, result)
  first = ours[0]
  out = {"model": settings.model, "mode": settings.mode, "batch_size": settings.batch_size,
         "image_size": settings.image_size, "dtype": settings.dtype,
         "model_kwargs": settings.model_kwargs, "plain": settings.plain,
         "steps": settings.steps, "warmup": settings.warmup, "rounds": rounds,
         "images_per_second": _median(o["images_per_second"] for o in ours),
         "step_ms": _median(o["step_ms"] for o in ours),
         "compile_seconds": _median(o["compile_seconds"] for o in ours),
         "lower_seconds": _median(o["lower_seconds"] for o in ours),
         "peak_memory_bytes": max(o["peak_memory_bytes"] for o in ours),
         "peak_memory_source": first["peak_memory_source"],
         "gflops_per_image": first["gflops_per_image"],
         "mfu": _median(o["mfu"] for o in ours)}
  for key in ("backend", "device_kind", "devices", "jax_version", "cpu_settings",
              "compile_cache_dir"):
    out[key] = first[key]
  if peer:
    out.update({
        "peer": peer + ("+compile" if peer == "torchvision" and settings.peer_compile else ""),
        "peer_images_per_second": _median(t["images_per_second"] for t in theirs),
        "peer_step_ms": _median(t["step_ms"] for t in theirs),
        # a framework's first step (compile included); the plain path's compile
        "peer_first_step_seconds": _median(t.get("first_step_seconds",
                                                 t.get("compile_seconds")) for t in theirs),
        "peer_peak_memory_bytes": max(t["peak_memory_bytes"] for t in theirs),
        "peer_version": theirs[0].get("version", f"jax {theirs[0].get('jax_version')}")})
    out["ratio"] = out["images_per_second"] / out["peer_images_per_second"]
    out["per_round"] = [
        {"images_per_second": o["images_per_second"],
         "peer_images_per_second": t["images_per_second"],
         "ratio": o["images_per_second"] / t["images_per_second"]}
        for o, t in zip(ours, theirs)]
  else:
    out["per_round"] = [{"images_per_second": o["images_per_second"]} for o in ours]
  out["date"] = started.isoformat(timespec="seconds")
  out["load_average_at_start"] = load
  return out


def worker(side: str, settings: Settings) -> dict:
  """Measures one side in this process (the worker's body)."""
  from cnn_jax.benchmark import peers
  if side in ("torchvision", "keras"):
    peers.check(side, settings.model, settings.dtype, settings.channels,
                settings.model_kwargs, settings.image_size)
    kwargs = dict(model=settings.model, batch_size=settings.batch_size,
                  image_size=settings.image_size, mode=settings.mode, dtype=settings.dtype,
                  steps=settings.steps, warmup=settings.warmup,
                  num_classes=settings.num_classes,
                  weight_decay=float(settings.fields.get("weight_decay", 0.0)))
    if side == "torchvision":
      return peers.measure_torchvision(
          **kwargs, compile=settings.peer_compile, channels=settings.channels,
          model_kwargs=settings.model_kwargs,
          nesterov=settings.fields.get("optimizer") == "nesterov")
    return peers.measure_keras(**kwargs)
  from cnn_jax import platform
  if side == "ours" and not settings.plain:
    platform.configure_cpu()  # before JAX starts, as cnn_jax.main does
  else:  # the environment already says so when started by run_side; this process too
    for variable in ("CNN_JAX_CPU_TUNING", *platform.CPU_GRADIENT_VARIABLES):
      os.environ[variable] = "0"
  from cnn_jax.benchmark import ours
  config = ours.build_config(settings.model, settings.batch_size, settings.image_size,
                             settings.dtype, settings.model_kwargs, settings.fields)
  return ours.measure(config, settings.mode, settings.steps, settings.warmup,
                      settings.num_classes, settings.channels)
