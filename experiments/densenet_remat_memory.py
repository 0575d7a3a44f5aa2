"""Peak training memory of a DenseNet with and without `remat` (rematerialised dense layers).

  .venv/bin/python -m experiments.densenet_remat_memory [--model densenet121]
      [--batch 16] [--size 224] [--steps 2]
  /usr/bin/time -v .venv/bin/python -m experiments.densenet_remat_memory --only remat

Without --only, runs each setting in a fresh subprocess (so that neither sees the other's
allocations) and prints the peak resident set size of each (getrusage ru_maxrss, the
figure `/usr/bin/time -v` reports as "Maximum resident set size"), the time per step and
the loss, which must agree; also the bytes JAX keeps for the backward pass
(`jax.ad_checkpoint.saved_residuals`), which is what remat changes whatever the backend.

Finding (jaxlib 0.10.2): on the CPU backend XLA drops remat's optimization barriers and
folds the recomputation back into the forward pass (a 20-layer toy goes from 118 to 80
dots after compilation, with the same temp buffer size), so remat does not lower the
CPU peak RSS; the saved-residual figure shows what it saves on backends that keep it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re
import resource
import subprocess
import sys
import time

from cnn_jax import platform

platform.configure_cpu()  # the trainer's CPU settings (cnn_jax/main.py does the same)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from jax.ad_checkpoint import print_saved_residuals  # noqa: E402

from cnn_jax import models  # noqa: E402


def peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def saved_residual_mib(model, variables, x, y) -> float:
  """MiB of the activations JAX saves for the backward pass of one training loss."""
  def loss_fn(params):
    logits, _ = model.apply({**variables, "params": params}, x, train=True,
                            mutable=["batch_stats"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  out = io.StringIO()
  with contextlib.redirect_stdout(out):  # public API: one "f32[16,56,56,128] from ..." a line
    print_saved_residuals(loss_fn, variables["params"])
  total = 0
  for line in out.getvalue().splitlines():
    m = re.match(r"(bf16|f16|f32|f64|s32|i32|u8|bool)\[([\d,]*)\]", line)
    if m and "argument" not in line:
      dims = [int(d) for d in m.group(2).split(",") if d]
      total += math.prod(dims) * {"bf16": 2, "f16": 2, "bool": 1, "u8": 1}.get(m.group(1), 4)
  return total / 2**20


def run(model_name: str, remat: bool, batch: int, size: int, steps: int) -> dict:
  model = models.create(model_name, remat=remat)
  x = jax.random.normal(jax.random.key(0), (batch, size, size, 3))
  y = jnp.arange(batch) % 1000
  variables = jax.jit(lambda k: model.init(k, x[:1], train=False))(jax.random.key(0))
  residual_mib = saved_residual_mib(model, variables, x, y)
  tx = optax.sgd(0.01, momentum=0.9)

  def loss_fn(params, batch_stats):
    logits, state = model.apply({"params": params, "batch_stats": batch_stats}, x,
                                train=True, mutable=["batch_stats"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, state["batch_stats"]

  @jax.jit
  def step(params, batch_stats, opt_state):
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch_stats)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  params, batch_stats = variables["params"], variables["batch_stats"]
  opt_state = tx.init(params)
  compiled = step.lower(params, batch_stats, opt_state).compile()
  rss_compiled = peak_rss_mib()
  losses, times = [], []
  for _ in range(steps):
    t0 = time.perf_counter()
    params, batch_stats, opt_state, loss = compiled(params, batch_stats, opt_state)
    losses.append(float(loss))
    times.append(time.perf_counter() - t0)
  return {"model": model_name, "remat": remat, "batch": batch, "size": size,
          "peak_rss_mib": round(peak_rss_mib()), "rss_after_compile_mib": round(rss_compiled),
          "saved_residuals_mib": round(residual_mib),
          "step_s": round(min(times), 2), "losses": [round(v, 5) for v in losses]}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="densenet121")
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--steps", type=int, default=2)
  parser.add_argument("--only", choices=("plain", "remat"), default=None)
  args = parser.parse_args()
  if args.only:
    print(json.dumps(run(args.model, args.only == "remat", args.batch, args.size, args.steps)))
    return
  results = []
  for only in ("plain", "remat"):
    out = subprocess.run(
        [sys.executable, "-m", "experiments.densenet_remat_memory", "--model", args.model,
         "--batch", str(args.batch), "--size", str(args.size), "--steps", str(args.steps),
         "--only", only], check=True, capture_output=True, text=True).stdout
    results.append(json.loads(out.strip().splitlines()[-1]))
    print(results[-1], flush=True)
  plain, remat = results
  print(f"{args.model}, batch {args.batch} at {args.size}px: peak RSS "
        f"{plain['peak_rss_mib']} MiB without remat, {remat['peak_rss_mib']} MiB with "
        f"({remat['peak_rss_mib'] / plain['peak_rss_mib']:.2f}x); step "
        f"{plain['step_s']} s vs {remat['step_s']} s")


if __name__ == "__main__":
  main()
