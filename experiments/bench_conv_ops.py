"""One convolution at a time on CPU: XLA's forward, input gradient and kernel gradient
against PyTorch's (oneDNN) on the same cores, in one process.

  .venv/bin/python -m experiments.bench_conv_ops [--shapes quickstart|resnet50|all]
      [--steps 20] [--rounds 3]

Each row is one 3x3, stride-1, 'SAME' convolution without bias in NHWC (PyTorch:
channels_last), float32, at a shape the package trains: `quickstart` the Fashion-MNIST
quickstart's 3x3 convolutions at batch 128 (the small-image regime of the studies: 28, 14,
7 and 4 px with 16 to 128 channels), `resnet50` ResNet-50's 3x3 convolutions at batch 8,
224 px. For each of the three operations it prints the median milliseconds of `--steps`
timed calls after warm-up, median over `--rounds` rounds that alternate which side goes
first, and the ratio PyTorch / ours (above 1: ours is faster). JAX's side is
`lax.conv_general_dilated` and its `jax.vjp`, jitted, with the package's CPU settings
(`cnn_jax.platform.configure_cpu`, as every entry point applies them); PyTorch's side is
`aten.convolution` and `aten.convolution_backward` with the other two outputs switched
off. Both sides run on the same inputs, and their results are compared (`max rel diff`),
so the rows time the same operation.

The train steps' gap to PyTorch on CPU (README, Benchmarks) is mostly here: these
operations are XLA:CPU's own kernels, which a model file cannot change.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from cnn_jax import platform

platform.configure_cpu()  # the trainer's CPU settings (cnn_jax/main.py does the same)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from cnn_jax.benchmark.timing import time_steps  # noqa: E402

# (batch, height = width, input channels, output channels)
SHAPES = {
    "quickstart": [(128, 28, 16, 16), (128, 14, 32, 32), (128, 7, 64, 64), (128, 4, 128, 128)],
    "resnet50": [(8, 56, 64, 64), (8, 28, 128, 128), (8, 14, 256, 256), (8, 7, 512, 512)],
}
OPS = ("forward", "input_grad", "kernel_grad")


def _conv(x, kernel):
  return lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def jax_ops() -> dict:
  """op name -> jitted fn(x, cotangent, kernel)."""
  return {
      "forward": jax.jit(lambda x, g, k: _conv(x, k)),
      "input_grad": jax.jit(lambda x, g, k: jax.vjp(lambda x: _conv(x, k), x)[1](g)[0]),
      "kernel_grad": jax.jit(lambda x, g, k: jax.vjp(lambda k: _conv(x, k), k)[1](g)[0]),
  }


def torch_ops(torch) -> dict:
  """op name -> fn(x, cotangent, weight) on NCHW channels_last tensors."""
  aten = torch.ops.aten

  def backward(mask):
    return lambda x, g, w: aten.convolution_backward(
        g, x, w, None, (1, 1), (1, 1), (1, 1), False, (0, 0), 1, mask)
  return {
      "forward": lambda x, g, w: aten.convolution(x, w, None, (1, 1), (1, 1), (1, 1), False,
                                                  (0, 0), 1),
      "input_grad": lambda x, g, w: backward((True, False, False))(x, g, w)[0],
      "kernel_grad": lambda x, g, w: backward((False, True, False))(x, g, w)[1],
  }


def to_nhwc_numpy(torch_out, op: str) -> np.ndarray:
  """PyTorch's result in JAX's layout: NCHW -> NHWC, OIHW -> HWIO."""
  out = torch_out.detach().numpy()
  return out.transpose(2, 3, 1, 0) if op == "kernel_grad" else out.transpose(0, 2, 3, 1)


def measure_shape(shape, steps: int, rounds: int, torch) -> dict:
  """op -> {'ours_ms', 'torch_ms', 'ratio', 'max_rel_diff'} for one shape."""
  n, hw, cin, cout = shape
  rng = np.random.default_rng(0)
  x = rng.standard_normal((n, hw, hw, cin), np.float32)
  g = rng.standard_normal((n, hw, hw, cout), np.float32)
  k = (rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin)).astype(np.float32)
  ours_args = tuple(jnp.asarray(a) for a in (x, g, k))
  cl = torch.channels_last
  torch_args = (torch.from_numpy(x.transpose(0, 3, 1, 2)).contiguous(memory_format=cl),
                torch.from_numpy(g.transpose(0, 3, 1, 2)).contiguous(memory_format=cl),
                torch.from_numpy(k.transpose(3, 2, 0, 1).copy()))
  ours, theirs = jax_ops(), torch_ops(torch)
  out = {}
  for op in OPS:
    mine = np.asarray(ours[op](*ours_args))
    ref = to_nhwc_numpy(theirs[op](*torch_args), op)
    diff = float(np.max(np.abs(mine - ref)) / max(np.max(np.abs(ref)), 1e-30))
    sides = {"ours": lambda: jax.block_until_ready(ours[op](*ours_args)),
             "torch": lambda: theirs[op](*torch_args)}
    medians = {side: [] for side in sides}
    for r in range(rounds):
      for side in (("ours", "torch") if r % 2 == 0 else ("torch", "ours")):
        medians[side].append(statistics.median(time_steps(sides[side], steps, warmup=2)))
    ours_s, torch_s = (statistics.median(medians[s]) for s in ("ours", "torch"))
    out[op] = {"ours_ms": ours_s * 1e3, "torch_ms": torch_s * 1e3,
               "ratio": torch_s / ours_s, "max_rel_diff": diff}
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--shapes", choices=(*SHAPES, "all"), default="all")
  parser.add_argument("--steps", type=int, default=20, help="timed calls per round")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--batch", type=int, default=0,
                      help="replace every shape's batch (0: keep; tiny runs in the tests)")
  args = parser.parse_args(argv)
  try:
    import torch
  except ImportError:
    print("error: PyTorch is not installed; pip install -r requirements-test.txt",
          file=sys.stderr)
    return 1
  from cnn_jax.benchmark.peers import cpu_threads
  torch.set_num_threads(cpu_threads())
  names = list(SHAPES) if args.shapes == "all" else [args.shapes]
  print(f"jax {jax.__version__}, jaxlib {jax.lib.__version__}, torch {torch.__version__}; "
        f"{cpu_threads()} threads; 3x3 stride-1 convolutions, float32, NHWC / channels_last")
  print("ms per call, ours / PyTorch (ratio PyTorch / ours: above 1, ours is faster)")
  for name in names:
    print(f"[{name}]")
    for shape in SHAPES[name]:
      if args.batch:
        shape = (args.batch, *shape[1:])
      res = measure_shape(shape, args.steps, args.rounds, torch)
      n, hw, cin, cout = shape
      cells = "  ".join(f"{op} {r['ours_ms']:7.2f} / {r['torch_ms']:7.2f} ({r['ratio']:.2f}x)"
                        for op, r in res.items())
      diff = max(r["max_rel_diff"] for r in res.values())
      print(f"  {n:3d}x{hw:3d}x{hw:3d}x{cin:3d} -> {cout:3d}  {cells}  max rel diff {diff:.1e}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
