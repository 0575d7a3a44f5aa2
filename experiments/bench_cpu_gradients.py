"""Train-step time on CPU with and without one of `Conv`'s CPU-only custom gradients.

  .venv/bin/python -m experiments.bench_cpu_gradients [--path depthwise|pointwise]
      [--model NAME] [--batch 8] [--size 224] [--steps 5]

Builds the same jitted SGD step twice in one process, once with the path's
`custom_vjp(True)` and once with False (XLA's own gradient), times `--steps` steps after
one warm-up step each, and prints both medians and their ratio. `--path depthwise`
(default model mobilenet_v2): cnn_jax/layers/depthwise.py, shifted multiply-adds;
`--path pointwise` (default model resnet50): cnn_jax/layers/pointwise.py, the 1x1
convolutions' kernel gradient as a batched matrix product.
"""

from __future__ import annotations

import argparse
import statistics
import time

from cnn_jax import platform

platform.configure_cpu()  # the trainer's CPU settings (cnn_jax/main.py does the same)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from cnn_jax import models  # noqa: E402
from cnn_jax.layers import depthwise, pointwise  # noqa: E402

PATHS = {"depthwise": (depthwise, "mobilenet_v2", "custom VJP (shifted multiply-adds)"),
         "pointwise": (pointwise, "resnet50", "custom VJP (batched matmul)")}


def make_step(model, tx):
  def loss_fn(params, batch_stats, x, y):
    logits, state = model.apply({"params": params, "batch_stats": batch_stats}, x,
                                train=True, mutable=["batch_stats"],
                                rngs={"dropout": jax.random.key(1)})
    loss = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y)
    return loss.mean(), state["batch_stats"]

  # A new closure per call, so that jit traces again under the caller's custom_vjp choice.
  @jax.jit
  def step(params, batch_stats, opt_state, x, y):
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch_stats, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  return step


def time_steps(path, model, variables, x, y, steps: int, fast: bool) -> tuple[float, float]:
  with path.custom_vjp(fast):  # the choice is read when `step` is traced, below
    return _time_steps(model, variables, x, y, steps)


def _time_steps(model, variables, x, y, steps: int) -> tuple[float, float]:
  tx = optax.sgd(0.01, momentum=0.9)
  params, batch_stats = variables["params"], variables["batch_stats"]
  opt_state = tx.init(params)
  step = make_step(model, tx)
  t0 = time.perf_counter()
  params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state, x, y)
  loss.block_until_ready()
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state, x, y)
    loss.block_until_ready()
    times.append(time.perf_counter() - t0)
  return statistics.median(times), compile_s


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--path", choices=sorted(PATHS), default="depthwise")
  parser.add_argument("--model", help="registry name (default: see --path)")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--steps", type=int, default=5)
  args = parser.parse_args()
  path, default_model, label_on = PATHS[args.path]
  args.model = args.model or default_model

  model = models.create(args.model)
  x = jax.random.normal(jax.random.key(0), (args.batch, args.size, args.size, 3))
  y = jnp.arange(args.batch) % 1000
  variables = model.init(jax.random.key(0), x, train=False)
  print(f"{args.model}, batch {args.batch} at {args.size}px, backend "
        f"{jax.default_backend()}, {jax.device_count()} device(s)")
  results = {}
  for fast in (True, False):
    step_s, compile_s = time_steps(path, model, variables, x, y, args.steps, fast)
    results[fast] = step_s
    label = label_on if fast else f"XLA {args.path} gradient"
    print(f"  {label:36s} {step_s * 1e3:9.1f} ms/step  (first step incl. compile "
          f"{compile_s:.1f} s)")
  if jax.default_backend() != "cpu":
    print("  (not CPU: Conv never takes the fast path, both runs are the same)")
  print(f"  speed-up: {results[False] / results[True]:.2f}x")


if __name__ == "__main__":
  main()
