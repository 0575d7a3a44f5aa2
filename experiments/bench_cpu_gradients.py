"""Train-step time on CPU with and without one of the CPU-only custom gradients or paths.

  .venv/bin/python -m experiments.bench_cpu_gradients
      [--path depthwise|pointwise|patches|fence|maxpool|pool_first]
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
gradient as a winner index and strided pads; `--path patches` (default model vgg11 at the
studies' scale: 32 px, width 0.25, batch 128, one input channel, 10 classes):
cnn_jax/layers/patches.py, a convolution over a map smaller than its kernel as a product
of patches, forward and backward. `--path pool_first` (default model densenet121):
cnn_jax/layers/dense.py, a DenseNet transition's average pool before its 1x1 convolution
(the same function on every backend, not a CPU-only path).
The Fashion-MNIST quickstart's model:

  .venv/bin/python -m experiments.bench_cpu_gradients --path fence --model resnet18 \
      --batch 128 --size 28 --channels 1 --num-classes 10 --set optimizer=nesterov \
      --model-kwargs "stem=small,width=16,stage_sizes=(1,1,1,1)"
"""

from __future__ import annotations

import argparse
from typing import Callable, NamedTuple

from cnn_jax import platform

platform.configure_cpu()  # the trainer's CPU settings (cnn_jax/main.py does the same)

import jax  # noqa: E402

from cnn_jax import models  # noqa: E402
from cnn_jax.benchmark import ours, runner  # noqa: E402
from cnn_jax.layers import dense, depthwise, fence, patches, pointwise, pooling  # noqa: E402


class Path(NamedTuple):
  """One switchable path: its switch (`with switch(False): ...` traces XLA's own), the
  default model, the labels of the path and of what XLA does instead, the settings it is
  timed at without --model, and whether it is taken on every backend (not only CPU)."""
  switch: Callable
  model: str
  label_on: str
  label_off: str
  defaults: dict = {}
  every_backend: bool = False


# ResNet-50 / MobileNetV2 / DenseNet-121 at batch 8, 224 px, 3 channels, 1000 classes.
DEFAULTS = dict(batch=8, size=224, channels=3, num_classes=1000, model_kwargs="")
PATHS = {
    "depthwise": Path(depthwise.custom_vjp, "mobilenet_v2",
                      "custom VJP (shifted multiply-adds)", "XLA depthwise gradient"),
    "pointwise": Path(pointwise.custom_vjp, "resnet50", "custom VJP (batched matmul)",
                      "XLA pointwise gradient"),
    "fence": Path(fence.custom_vjp, "resnet50", "custom VJP (fenced operands)",
                  "XLA fence gradient"),
    "maxpool": Path(pooling.max_pool_vjp, "resnet50", "custom VJP (winner index)",
                    "XLA maxpool gradient"),
    # VGG-A as configs/vgg.py's cpu_study trains it.
    "patches": Path(patches.custom_path, "vgg11", "product of patches", "XLA's convolution",
                    defaults=dict(batch=128, size=32, channels=1, num_classes=10,
                                  model_kwargs="width_multiplier=0.25,fc_features=(256,256),"
                                               "fc_window=1,dense_eval=False,"
                                               "weight_init=glorot")),
    "pool_first": Path(dense.pool_first, "densenet121", "transitions pool, then convolve",
                       "transitions convolve, then pool", every_backend=True),
}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--path", choices=sorted(PATHS), default="depthwise")
  parser.add_argument("--model", help="registry name (default: see --path)")
  parser.add_argument("--batch", type=int)
  parser.add_argument("--size", type=int)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--channels", type=int)
  parser.add_argument("--num-classes", type=int)
  parser.add_argument("--model-kwargs", metavar="K=V,...")
  parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
  args = parser.parse_args()
  path = PATHS[args.path]
  defaults = {**DEFAULTS, **(path.defaults if args.model is None else {})}
  for name, value in defaults.items():
    if getattr(args, name) is None:
      setattr(args, name, value)
  args.model = args.model or path.model
  try:  # a mistake is one line, before anything compiles
    models.spec(args.model)
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
    with path.switch(fast):  # read when measure traces the step
      result = ours.measure(config, "train", steps=args.steps, warmup=1,
                            num_classes=args.num_classes, channels=args.channels)
    results[fast] = result["step_ms"]
    label = path.label_on if fast else path.label_off
    print(f"  {label:36s} {result['step_ms']:9.1f} ms/step  (compile "
          f"{result['compile_seconds']:.1f} s)")
  if jax.default_backend() != "cpu" and not path.every_backend:
    print("  (not CPU: the CPU-only path is never taken, both runs are the same)")
  print(f"  speed-up: {results[False] / results[True]:.2f}x")


if __name__ == "__main__":
  main()
