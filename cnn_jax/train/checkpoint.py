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
