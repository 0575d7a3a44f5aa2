"""Overhead of the sharded train step: ResNet-50 on 8 simulated CPU devices vs 1 device at
the same global batch, each measured in a fresh process in the same run.

  python experiments/bench_sharded_step.py [--batch 16] [--size 128] [--steps 3]
  python experiments/bench_sharded_step.py --devices 1 --dtype bfloat16   # one measurement,
                                                                          # e.g. on a GPU

Prints seconds per step and images/s for each layout, and the ratio 8-device / 1-device.
On one machine, 8 "devices" share the same cores, so the ratio measures the cost of
partitioning (collectives, smaller per-device convolutions), not a speed-up.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def measure(model_name, batch, size, steps, dtype):
  from cnn_jax import platform
  platform.configure_cpu()
  import jax
  import numpy as np
  from configs import default
  from cnn_jax import models, parallel
  from cnn_jax.train.optimizers import create_optimizer, learning_rate_schedule
  from cnn_jax.train.state import TrainState
  from cnn_jax.train.steps import jit_steps
  import jax.numpy as jnp

  c = default.get_config()
  c.update(dict(model=model_name, batch_size=batch, image_size=size, dtype=dtype,
                optimizer="nesterov", weight_decay=1e-4))
  mesh = parallel.make_mesh()
  model = models.create(model_name, num_classes=1000, dtype=getattr(jnp, dtype))
  tx = create_optimizer(c, learning_rate_schedule(c, 100, 100))
  init = lambda rng: TrainState.create(model.init(rng, jnp.zeros((1, size, size, 3)),
                                                  train=False), tx, use_ema=False)
  abstract = jax.eval_shape(init, jax.random.key(0))
  shardings = parallel.state_shardings(mesh, abstract)
  state = jax.jit(init, out_shardings=shardings)(jax.random.key(0))
  train_fn, _ = jit_steps(model.apply, c, 1000, shardings, parallel.batch_sharding(mesh),
                          parallel.replicated(mesh))
  rng = np.random.default_rng(0)
  batch_np = {"image": rng.normal(size=(batch, size, size, 3)).astype(np.float32),
              "label": rng.integers(0, 1000, batch).astype(np.int32)}
  batch_arr = parallel.global_batch(mesh, batch_np)
  t0 = time.perf_counter()
  state, m = train_fn(state, batch_arr, jax.random.key(1))
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for _ in range(steps):
    state, m = train_fn(state, batch_arr, jax.random.key(1))
  jax.block_until_ready(m)
  dt = (time.perf_counter() - t0) / steps
  return {"devices": jax.device_count(), "backend": jax.default_backend(),
          "seconds_per_step": dt, "images_per_second": batch / dt, "first_step_s": compile_s}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--model", default="resnet50")
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--size", type=int, default=128)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--dtype", default="float32")
  p.add_argument("--devices", type=int, default=0, help="measure only this many (worker)")
  a = p.parse_args()
  if a.devices:
    print("RESULT " + json.dumps(measure(a.model, a.batch, a.size, a.steps, a.dtype)))
    return
  results = {}
  for n in (1, 8):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, __file__, "--devices", str(n), "--model", a.model,
                          "--batch", str(a.batch), "--size", str(a.size), "--steps",
                          str(a.steps), "--dtype", a.dtype], env=env, capture_output=True,
                         text=True, check=True).stdout
    results[n] = json.loads([l for l in out.splitlines() if l.startswith("RESULT")][-1][7:])
    r = results[n]
    print(f"{a.model} {a.dtype} batch {a.batch} @ {a.size}px, {n} device(s): "
          f"{r['seconds_per_step']:.2f} s/step, {r['images_per_second']:.1f} img/s "
          f"(first step {r['first_step_s']:.0f} s)", flush=True)
  print(f"8-device / 1-device step time: "
        f"{results[8]['seconds_per_step'] / results[1]['seconds_per_step']:.2f}x")


if __name__ == "__main__":
  main()
