"""Train-step time on CPU with and without one of the CPU-only custom gradients.

  .venv/bin/python -m experiments.bench_cpu_gradients [--path depthwise|pointwise|fence|maxpool]
      [--model NAME] [--batch 8] [--size 224] [--steps 5] [--channels 3]
      [--num-classes 1000] [--model-kwargs K=V,...] [--set FIELD=VALUE]

Times the trainer's own train step (`cnn_jax.benchmark.ours.measure`: the TrainState,
optimiser and jitted step of `cnn_jax.main`) twice in one process, once traced with the
path's `custom_vjp(True)` and once with False (XLA's own gradient), and prints both
medians and their ratio. `--path depthwise` (default model mobilenet_v2):
cnn_jax/layers/depthwise.py, shifted multiply-adds; `--path pointwise` (default model
resnet50): cnn_jax/layers/pointwise.py, the 1x1 convolutions' kernel gradient as a
batched matrix product; `--path fence` (default model resnet50):
cnn_jax/layers/fence.py, the other convolutions' kernel gradients from fenced operands;
`--path maxpool` (default model resnet50): cnn_jax/layers/pooling.py, max pooling's
gradient as a winner index and strided pads.
The Fashion-MNIST quickstart's model:

  .venv/bin/python -m experiments.bench_cpu_gradients --path fence --model resnet18 \
      --batch 128 --size 28 --channels 1 --num-classes 10 --set optimizer=nesterov \
      --model-kwargs "stem=small,width=16,stage_sizes=(1,1,1,1)"
"""

from __future__ import annotations

import argparse

from cnn_jax import platform

platform.configure_cpu()  # the trainer's CPU settings (cnn_jax/main.py does the same)

import jax  # noqa: E402

from cnn_jax.benchmark import ours, runner  # noqa: E402
from cnn_jax.layers import depthwise, fence, pointwise, pooling  # noqa: E402

# Each path's switch (`with switch(False): ...` traces XLA's gradient), default model, label.
PATHS = {"depthwise": (depthwise.custom_vjp, "mobilenet_v2",
                       "custom VJP (shifted multiply-adds)"),
         "pointwise": (pointwise.custom_vjp, "resnet50", "custom VJP (batched matmul)"),
         "fence": (fence.custom_vjp, "resnet50", "custom VJP (fenced operands)"),
         "maxpool": (pooling.max_pool_vjp, "resnet50", "custom VJP (winner index)")}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--path", choices=sorted(PATHS), default="depthwise")
  parser.add_argument("--model", help="registry name (default: see --path)")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--channels", type=int, default=3)
  parser.add_argument("--num-classes", type=int, default=1000)
  parser.add_argument("--model-kwargs", default="", metavar="K=V,...")
  parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
  args = parser.parse_args()
  use_path, default_model, label_on = PATHS[args.path]
  args.model = args.model or default_model
  try:  # a mistake is one line, before anything compiles
    model_kwargs = runner.key_values(args.model_kwargs, "--model-kwargs")
    fields = {}
    for item in args.set:
      fields.update(runner.key_values(item, "--set"))
    config = ours.build_config(args.model, args.batch, args.size,
                               model_kwargs=model_kwargs, fields=fields)
  except ValueError as e:
    parser.error(str(e))

  print(f"{args.model}, batch {args.batch} at {args.size}px, backend "
        f"{jax.default_backend()}, {jax.device_count()} device(s)")
  results = {}
  for fast in (True, False):  # the same config: measure only reads it
    with use_path(fast):  # read when measure traces the step
      result = ours.measure(config, "train", steps=args.steps, warmup=1,
                            num_classes=args.num_classes, channels=args.channels)
    results[fast] = result["step_ms"]
    label = label_on if fast else f"XLA {args.path} gradient"
    print(f"  {label:36s} {result['step_ms']:9.1f} ms/step  (compile "
          f"{result['compile_seconds']:.1f} s)")
  if jax.default_backend() != "cpu":
    print("  (not CPU: the CPU-only path is never taken, both runs are the same)")
  print(f"  speed-up: {results[False] / results[True]:.2f}x")


if __name__ == "__main__":
  main()
