"""ResNet-50 bfloat16 training on one GPU: the trainer's own step against torchvision AMP.

The one command, on an H100 / H200 machine with JAX (CUDA), torch and torchvision, from the
repository root (needs neither TensorFlow, TFDS, ml_collections nor clu):

  python3 experiments/bench_gpu_resnet50.py --out results.json

Batch 256 at 224 px of synthetic data (normal noise, random labels, one batch reused),
bfloat16 compute with float32 parameters on both sides:

  ours         the train step `python -m cnn_jax.main` runs (configs/default.py with
               model=resnet50: TrainState, SGD with momentum, `jit_steps`), through
               `cnn_jax.benchmark` (cnn_jax/benchmark/ours.py)
  torch        torchvision.models.resnet50, channels_last, torch.autocast(bfloat16), SGD
               with momentum (cnn_jax/benchmark/peers.py)
  torch+compile  the same under torch.compile; if it fails, its error is reported and the
               rest still runs

Each side runs in its own fresh process, `--rounds` times, the order reversed every
round; a side's figure is the median over the rounds of its per-round median step. JAX's
persistent compilation cache (a temporary directory) keeps later rounds from compiling
again; the first round's compile time is reported. Prints one line per side and round,
then one JSON line: images/s, MFU from the fixed 24.5 GFLOP per training image at 224 px
(scaled by (size / 224)^2; the same count for every side) against the device's bfloat16
peak (cnn_jax/benchmark/peaks.py), XLA's own FLOP count for our step, peak memory, and the
ratios ours / torch and ours / best torch (issue 17's target: >= 1.2x).

Runs on a CPU with tiny sizes (MFU is then null; torch sides are skipped with a reason
where torch is not installed):

  python experiments/bench_gpu_resnet50.py --batch-size 2 --image-size 64 --steps 2 \
      --warmup 1 --rounds 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run as a script from a checkout, installed or not

from cnn_jax.benchmark import peaks, peers, runner  # noqa: E402

TRAIN_GFLOP_PER_IMAGE_224 = 24.5  # ResNet-50: ~4.1 GMAC forward, x2 FLOP/MAC, x3 train


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch-size", type=int, default=256)
  p.add_argument("--image-size", type=int, default=224)
  p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
  p.add_argument("--steps", type=int, default=20, help="timed steps per round")
  p.add_argument("--warmup", type=int, default=5)
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--no-torch-compile", action="store_true")
  p.add_argument("--timeout", type=float, default=420, help="seconds per side and round")
  p.add_argument("--out", help="also write the JSON here")
  a = p.parse_args(argv)

  settings = runner.Settings(model="resnet50", batch_size=a.batch_size,
                             image_size=a.image_size, dtype=a.dtype, steps=a.steps,
                             warmup=a.warmup)
  sides = {"ours": ("ours", settings)}
  skipped = {}
  try:
    peers.check("torchvision", "resnet50", a.dtype, 3, {})
    sides["torch"] = ("torchvision", settings)
    if a.no_torch_compile:
      skipped["torch+compile"] = "--no-torch-compile"
    else:
      sides["torch+compile"] = ("torchvision",
                                dataclasses.replace(settings, peer_compile=True))
  except peers.PeerError as e:
    skipped["torch"] = skipped["torch+compile"] = str(e)

  cache = tempfile.mkdtemp(prefix="cnn_jax_bench_xla_")
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache,
             PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
  results = {name: [] for name in sides}
  for r in range(a.rounds):
    order = list(sides) if r % 2 == 0 else list(sides)[::-1]
    for name in order:
      if name in skipped:
        continue
      side, s = sides[name]
      try:
        result = runner.run_side(s, side, timeout=a.timeout, env=env)
      except runner.BenchmarkError as e:
        if name == "ours":
          raise
        skipped[name] = str(e)  # e.g. torch.compile failing here: report, go on
        print(f"round {r}: {name} failed: {e}", flush=True)
        continue
      results[name].append(result)
      print(f"round {r}: {name:14s} {result['images_per_second']:9.1f} img/s  "
            f"step {result['step_ms']:8.1f} ms", flush=True)

  ours = results["ours"]
  device_kind = ours[0]["device_kind"]
  flops_per_image = TRAIN_GFLOP_PER_IMAGE_224 * 1e9 * (a.image_size / 224) ** 2
  out = {"model": "resnet50", "batch_size": a.batch_size, "image_size": a.image_size,
         "dtype": a.dtype, "steps": a.steps, "warmup": a.warmup, "rounds": a.rounds,
         "device_kind": device_kind, "backend": ours[0]["backend"],
         "gflop_per_image_for_mfu": flops_per_image / 1e9,
         "ours_gflops_per_image_xla": ours[0]["gflops_per_image"],
         "ours_compile_seconds": ours[0]["compile_seconds"],
         "peak_tflops": (peaks.peak_flops(device_kind, a.dtype) or 0) / 1e12 or None}
  for name in sides:
    runs = results[name]
    key = name.replace("+", "_")
    ips = statistics.median(x["images_per_second"] for x in runs) if runs else None
    out[f"{key}_images_per_second"] = ips
    out[f"{key}_per_round"] = [x["images_per_second"] for x in runs]
    out[f"{key}_mfu"] = peaks.mfu(ips, flops_per_image, device_kind, a.dtype)
    out[f"{key}_peak_memory_bytes"] = max((x["peak_memory_bytes"] for x in runs),
                                          default=None)
    if runs and name != "ours":
      out[f"{key}_first_step_seconds"] = runs[0]["first_step_seconds"]
      out["torch_version"] = runs[0]["version"]
  torch_figures = {n: out[f"{n.replace('+', '_')}_images_per_second"]
                   for n in sides if n != "ours"}
  torch_figures = {n: v for n, v in torch_figures.items() if v}
  out["ratio_vs_torch"] = (out["ours_images_per_second"] / torch_figures["torch"]
                           if "torch" in torch_figures else None)
  best = max(torch_figures, key=torch_figures.get) if torch_figures else None
  out["best_torch"] = best
  out["ratio_vs_best_torch"] = (out["ours_images_per_second"] / torch_figures[best]
                                if best else None)
  out["skipped"] = skipped
  line = json.dumps(out)
  print(line, flush=True)
  if a.out:
    with open(a.out, "w") as f:
      f.write(line + "\n")
  return out


if __name__ == "__main__":
  try:
    main()
  except runner.BenchmarkError as e:
    sys.exit(f"error: {e}")
