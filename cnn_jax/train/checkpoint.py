"""Orbax checkpoints of the train state: periodic, asynchronous, multi-host safe.

The saved tree is the TrainState's arrays (step, params, batch_stats, opt_state,
ema_params). Restoring takes the target shardings, so a checkpoint written on 8 devices
restores onto 1 or 4. Every process calls save/restore; orbax coordinates the writes.
"""

from __future__ import annotations

import os

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
  step = int(jax.device_get(state.step))
  if mngr.latest_step() != step:
    mngr.save(step, args=ocp.args.StandardSave(state), metrics={"top1": metrics["top1"]},
              force=True)


def save(mngr: ocp.CheckpointManager, state, force: bool = False) -> None:
  step = int(jax.device_get(state.step))
  mngr.save(step, args=ocp.args.StandardSave(state), force=force)


def restore_latest(mngr: ocp.CheckpointManager, state):
  """Restores the newest checkpoint onto `state`'s shapes and shardings, or returns None."""
  step = mngr.latest_step()
  if step is None:
    return None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  return mngr.restore(step, args=ocp.args.StandardRestore(abstract))


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
