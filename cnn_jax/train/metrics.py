"""Console progress, TensorBoard scalars and the run's final results.json."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time

import jax
import numpy as np


def params_fingerprint(params) -> str:
  """sha256 of the float32 bytes of every parameter leaf, in tree order."""
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(params)):
    h.update(np.asarray(leaf, dtype=np.float32).tobytes())
  return h.hexdigest()


def _duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
  """Steps/s, images/s and ETA over the last logging window (compile time excluded)."""

  def __init__(self, total_steps: int, start_step: int, global_batch: int):
    self.total, self.global_batch = total_steps, global_batch
    self.window_start, self.window_step = None, start_step
    self.train_seconds, self.train_steps = 0.0, 0

  def start_window(self, step: int):
    self.window_start, self.window_step = time.perf_counter(), step

  def end_window(self, step: int) -> dict:
    elapsed = time.perf_counter() - self.window_start
    steps = step - self.window_step
    self.train_seconds += elapsed
    self.train_steps += steps
    rate = steps / elapsed if elapsed > 0 else float("nan")
    return {"steps_per_second": rate, "images_per_second": rate * self.global_batch,
            "eta": _duration((self.total - step) / rate) if rate > 0 else "?"}

  @property
  def images_per_second(self) -> float:
    return self.train_steps * self.global_batch / self.train_seconds if self.train_seconds else 0.0


def log_line(step: int, total: int, scalars: dict, speed: dict | None = None) -> None:
  parts = [f"step {step}/{total}"] + [f"{k} {v:.4f}" for k, v in scalars.items()]
  if speed:
    parts.append(f"{speed['steps_per_second']:.2f} steps/s "
                 f"{speed['images_per_second']:.0f} img/s ETA {speed['eta']}")
  logging.info(" | ".join(parts))


def write_results(workdir: str, results: dict) -> None:
  if jax.process_index() != 0:
    return
  path = os.path.join(workdir, "results.json")
  with open(path + ".tmp", "w") as f:
    json.dump(results, f, indent=2, sort_keys=True)
  os.replace(path + ".tmp", path)


HISTORY = "history.jsonl"


class History:
  """The run's machine-readable learning curve: `<workdir>/history.jsonl`, one JSON line
  per log window ({"kind": "train", step, epoch, loss, top1, learning_rate,
  images_per_second}) and per evaluation ({"kind": "eval", step, epoch, loss, top1, top5,
  and "split" for extra evaluation sets}).

  A resumed run first drops the lines written after the restored step (they belong to
  steps that will be trained again), so the file always describes one run. Only process
  0 writes; lines are flushed as written, so a killed run keeps what it logged.
  """

  def __init__(self, workdir: str, start_step: int):
    self.path = os.path.join(workdir, HISTORY)
    self.enabled = jax.process_index() == 0
    if not self.enabled:
      return
    kept = [r for r in read_history(workdir) if r["step"] <= start_step]
    with open(self.path + ".tmp", "w") as f:
      f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in kept)
    os.replace(self.path + ".tmp", self.path)

  def write(self, kind: str, step: int, epoch: float, values: dict) -> None:
    if not self.enabled:
      return
    record = {"kind": kind, "step": int(step), "epoch": round(float(epoch), 6),
              **{k: float(v) if isinstance(v, (int, float, np.floating, np.integer))
                 else v for k, v in values.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(record, sort_keys=True) + "\n")


def read_history(workdir: str) -> list[dict]:
  """The records of `<workdir>/history.jsonl`; a torn last line (a killed run) is skipped."""
  path = os.path.join(workdir, HISTORY)
  if not os.path.exists(path):
    return []
  records = []
  with open(path) as f:
    for line in f:
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:
        continue
  return records
