"""Orbax checkpoints of the train state: periodic, asynchronous, multi-host safe.

The saved tree is the TrainState's arrays (step, params, batch_stats, opt_state,
ema_params). Restoring takes the target shardings, so a checkpoint written on 8 devices
restores onto 1 or 4. Every process calls save/restore; orbax coordinates the writes.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import sys
import threading
import time

import jax
import orbax.checkpoint as ocp


def manager(workdir: str, keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                         enable_async_checkpointing=True)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                               options=options)


def best_manager(workdir: str) -> ocp.CheckpointManager:
  """Keeps only the evaluation with the highest top-1, apart from the last-N manager."""
  options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True, best_fn=lambda m: m["top1"],
                                         best_mode="max", enable_async_checkpointing=True)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints_best"),
                               options=options)


def save_if_best(mngr: ocp.CheckpointManager, state, metrics: dict) -> None:
  """Offers the evaluated `state` to the best manager. A step it holds already is left as
  it is: a run killed after evaluating that step resumes from an earlier checkpoint and
  evaluates it again (and a kill during orbax's deletion of a worse step can leave it
  beside a newer one, so the newest step is not the only one to check)."""
  step = int(jax.device_get(state.step))
  if step not in mngr.all_steps():
    mngr.save(step, args=ocp.args.StandardSave(state), metrics={"top1": metrics["top1"]},
              force=True)


def save(mngr: ocp.CheckpointManager, state, force: bool = False) -> None:
  step = int(jax.device_get(state.step))
  mngr.save(step, args=ocp.args.StandardSave(state), force=force)


class CheckpointError(ValueError):
  """No kept checkpoint of a workdir can be restored; the message is one line."""


@contextlib.contextmanager
def _quiet_failed_reads():
  """A failed restore leaves orbax's pending reads to raise in asyncio coroutines and
  threads, which Python prints as whole tracebacks (with the TensorStore spec) on stderr:
  they repeat the error the restore itself raised, so they are dropped meanwhile."""
  hooks = sys.unraisablehook, threading.excepthook
  sys.unraisablehook = lambda unraisable: None
  threading.excepthook = lambda args: None
  try:
    yield
  finally:
    gc.collect()  # the abandoned coroutines report now, while their reports are dropped
    sys.unraisablehook, threading.excepthook = hooks


def _one_line(e: BaseException, limit: int = 240) -> str:
  """The root cause of a failed restore, short: orbax wraps TensorStore's error (e.g.
  'OUT_OF_RANGE: Error reading "params.x/0.0" ...') in one that prints a whole spec."""
  while (e.__cause__ or e.__context__) is not None and "TensorStore" in str(e):
    e = e.__cause__ or e.__context__
  text = " ".join(f"{type(e).__name__}: {e}".split())
  return text if len(text) <= limit else text[:limit] + "..."


def restore_latest(mngr: ocp.CheckpointManager, state, set_aside: str | None = None):
  """Restores the newest checkpoint that reads back onto `state`'s shapes and shardings;
  None when there is no checkpoint.

  A checkpoint that fails to restore (a truncated or missing file: a full disk, a copy cut
  short) is skipped with a warning naming its step, and the next older kept one is tried.
  The skipped ones are then moved into `set_aside` (if given; nothing is deleted), so that
  training can save those steps again. If none restores: CheckpointError, nothing moved.
  """
  steps = sorted(mngr.all_steps(), reverse=True)
  if not steps:
    return None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  failed = []
  for step in steps:
    try:
      with _quiet_failed_reads():
        restored = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # noqa: BLE001 — orbax and TensorStore raise many kinds
      failed.append((step, e))
      logging.warning("checkpoint step %d in %s cannot be restored (%s); skipping it", step,
                      mngr.directory, _one_line(e))
      continue
    if failed:
      logging.warning("resuming from step %d instead of step %d", step, failed[0][0])
      _set_aside(mngr, [s for s, _ in failed], set_aside)
    return restored
  raise CheckpointError(
      f"none of the {len(steps)} checkpoints in {mngr.directory} (steps "
      f"{', '.join(map(str, steps))}) can be restored; step {failed[0][0]}: "
      f"{_one_line(failed[0][1])}. Nothing was deleted")


def _set_aside(mngr: ocp.CheckpointManager, steps, destination: str | None) -> None:
  """Moves unreadable step folders out of the manager's directory (process 0), so their
  steps can be saved again, and makes every process's manager forget them."""
  if destination is None:
    return
  if jax.process_index() == 0:
    os.makedirs(destination, exist_ok=True)
    for step in steps:
      source = os.path.join(str(mngr.directory), str(step))
      target = os.path.join(destination, str(step))
      if os.path.exists(target):
        target += f".{int(time.time())}"
      if os.path.isdir(source):
        shutil.move(source, target)
        logging.warning("moved the unreadable checkpoint step %d to %s", step, target)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices("cnn_jax_checkpoint_set_aside")
  mngr.reload()


# --- pretrained weights (cnn_jax.convert's output, read by config.init_from) ------------

PRETRAINED_METADATA = "cnn_jax_pretrained.json"


def save_pretrained(directory: str, variables, metadata: dict) -> None:
  """Writes `variables` ({'params', 'batch_stats'}) as an orbax tree plus a JSON record of
  the model name, overrides and input normalisation. Refuses a non-empty directory."""
  import json

  directory = os.path.abspath(directory)
  if os.path.exists(directory) and os.listdir(directory):
    raise FileExistsError(f"{directory} is not empty; choose a new --out directory")
  os.makedirs(directory, exist_ok=True)
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.join(directory, "variables"), variables)
  checkpointer.wait_until_finished()
  # Written last: a directory with the JSON record holds complete weights.
  with open(os.path.join(directory, PRETRAINED_METADATA), "w") as f:
    json.dump(metadata, f, indent=2, sort_keys=True)


def pretrained_metadata(directory: str) -> dict:
  """The JSON record of a converted checkpoint; ValueError (one line) if it is not one."""
  import json

  path = os.path.join(directory, PRETRAINED_METADATA)
  if not os.path.isfile(path):
    raise ValueError(f"init_from={directory} is not a converted checkpoint (no "
                     f"{PRETRAINED_METADATA}); write one with python -m cnn_jax.convert")
  with open(path) as f:
    return json.load(f)


def load_pretrained(directory: str):
  """The variables tree of a converted checkpoint, as host numpy arrays."""
  return ocp.StandardCheckpointer().restore(
      os.path.join(os.path.abspath(directory), "variables"))


def pretrained_structure(directory: str):
  """The variables tree of a converted checkpoint as orbax metadata (shapes and dtypes,
  no array read): lets a config be checked against it before anything compiles."""
  metadata = ocp.StandardCheckpointer().metadata(
      os.path.join(os.path.abspath(directory), "variables"))
  return getattr(metadata, "item_metadata", metadata)
