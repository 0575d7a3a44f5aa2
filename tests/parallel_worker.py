"""Runs the package's sharded train step in a fresh process with a chosen device count.

Used by tests/test_parallel.py, which starts it with
XLA_FLAGS=--xla_force_host_platform_device_count=N (and, for multi-host, two copies joined
through jax.distributed on 127.0.0.1). Data are synthetic and identical for every layout:
the global batch of step s is drawn from numpy seed s, and each process feeds its slice.
Prints one `RESULT` JSON line per layout (`--layouts`; several run one after another in one
process): the losses, and the fingerprint of the final parameters. tests/test_parallel.py
also calls `run` in its own (one-device) process.
"""

import argparse
import json
import time

import jax
import numpy as np

from cnn_jax import parallel
from cnn_jax.train import checkpoint
from cnn_jax.train.loop import create_model, create_train_state
from cnn_jax.train.metrics import params_fingerprint
from cnn_jax.train.steps import jit_steps

GLOBAL_BATCH, SIZE, CLASSES = 16, 16, 10


def config(dtype="float32"):
  from configs import fashion_mnist
  c = fashion_mnist.get_config()
  c.model_kwargs = {"stem": "small", "width": 4}
  c.batch_size, c.image_size, c.dtype = GLOBAL_BATCH, SIZE, dtype
  c.learning_rate, c.lr_schedule, c.weight_decay = 0.01, "constant", 1e-4
  return c


def global_batch_numpy(step):
  rng = np.random.default_rng(step)
  return {"image": rng.normal(size=(GLOBAL_BATCH, SIZE, SIZE, 1)).astype(np.float32),
          "label": rng.integers(0, CLASSES, GLOBAL_BATCH).astype(np.int32)}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--dtype", default="float32")
  p.add_argument("--ckpt_dir", default="", help="where the (last) layout's state is saved")
  p.add_argument("--port", type=int, default=0)
  p.add_argument("--process_id", type=int, default=0)
  p.add_argument("--num_processes", type=int, default=1)
  p.add_argument("--layouts", default="all", help="comma-separated layouts trained one "
                 "after another in this process, each printing its RESULT line: 'all' (every "
                 "device), 'N' (the first N devices), 'fsdp' (every device, parameters "
                 "sharded)")
  p.add_argument("--restore_on", type=int, default=0, help="then restore the checkpoint "
                 "just saved onto the first N devices and print its RESULT ('restoreN')")
  p.add_argument("--repeat_batch", action="store_true", help="train on step 0's batch "
                 "at every step (a loss that must fall)")
  p.add_argument("--start_delay", type=float, default=0.0, help="seconds to sleep before "
                 "building the model, as a process on a slow host would lag")
  a = p.parse_args()
  if a.num_processes > 1:
    parallel.initialize_distributed(f"127.0.0.1:{a.port}", a.num_processes, a.process_id)
  time.sleep(a.start_delay)
  layouts = a.layouts.split(",")
  for layout in layouts:
    devices = jax.devices()[:int(layout)] if layout.isdigit() else jax.devices()
    out = run(a, parallel.make_mesh(devices), shard_params=layout == "fsdp",
              save=layout == layouts[-1])
    print("RESULT " + json.dumps({"layout": layout, **out}), flush=True)
  if a.restore_on:
    out = run(a, parallel.make_mesh(jax.devices()[:a.restore_on]), False, False, restore=True)
    print("RESULT " + json.dumps({"layout": f"restore{a.restore_on}", **out}), flush=True)


def run(a, mesh, shard_params: bool, save: bool, restore: bool = False) -> dict:
  """Trains `a.steps` steps on `mesh`, saving the final state to `a.ckpt_dir` if `save`; or,
  with `restore`, restores the newest checkpoint of `a.ckpt_dir` onto `mesh`."""
  c = config(a.dtype)
  c.shard_params, c.shard_params_min_size = shard_params, 64  # tiny model: shard small arrays
  model = create_model(c, CLASSES)
  state, shardings, _ = create_train_state(c, model, mesh, (SIZE, SIZE, 1), 100, 100)
  out = {"devices": mesh.size, "processes": jax.process_count(),
         "sharded_param_leaves": sum(not s.is_fully_replicated
                                     for s in jax.tree.leaves(shardings.params))}
  if restore:
    mngr = checkpoint.manager(a.ckpt_dir, keep=2)
    state = checkpoint.restore_latest(mngr, state)
    out["step"] = int(jax.device_get(state.step))
    out["fingerprint"] = params_fingerprint(state.params)
    return out
  train_fn, _ = jit_steps(model.apply, c, CLASSES, shardings, parallel.batch_sharding(mesh),
                          parallel.replicated(mesh))
  local = GLOBAL_BATCH // jax.process_count()
  lo = jax.process_index() * local
  losses = []
  for step in range(a.steps):
    data_seed = 0 if a.repeat_batch else step
    batch = {k: v[lo:lo + local] for k, v in global_batch_numpy(data_seed).items()}
    state, metrics = train_fn(state, parallel.global_batch(mesh, batch), jax.random.key(0))
    losses.append(float(metrics["loss"]))
  out["losses"] = losses
  out["param_dtypes"] = sorted({str(x.dtype) for x in jax.tree.leaves(state.params)})
  out["fingerprint"] = params_fingerprint(state.params)
  if a.ckpt_dir and save:
    mngr = checkpoint.manager(a.ckpt_dir, keep=2)
    checkpoint.save(mngr, state, force=True)
    mngr.wait_until_finished()
  return out


if __name__ == "__main__":
  main()
