"""`python -m cnn_jax.benchmark --model NAME --batch-size B --image-size S ...`; see
cnn_jax/benchmark/__init__.py. Prints one JSON line; a mistake is one `error:` line and
exit status 2."""

from __future__ import annotations

import argparse
import json
import sys

from cnn_jax.benchmark import peers, runner


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m cnn_jax.benchmark",
      description="Images/s of the trainer's jitted step, alone or against a peer; one "
                  "JSON line.")
  # Required (checked in main, since the hidden worker mode takes --settings instead).
  p.add_argument("--model", help="a registry name (cnn_jax.models.names()); required")
  p.add_argument("--batch-size", type=int, help="global batch; required")
  p.add_argument("--image-size", type=int, help="required")
  p.add_argument("--mode", choices=("train", "infer"), default="train",
                 help="train: the train step; infer: the eval step")
  p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                 help="compute dtype (config.dtype)")
  p.add_argument("--steps", type=int, default=10, help="timed steps per round")
  p.add_argument("--warmup", type=int, default=2, help="untimed steps before them")
  p.add_argument("--rounds", type=int, default=1,
                 help="fresh processes per side, alternating which side goes first")
  p.add_argument("--peer", choices=("torchvision", "keras", "plain"),
                 help="also measure this peer (plain: ours without the CPU settings)")
  p.add_argument("--peer-compile", action="store_true",
                 help="torchvision peer: torch.compile the model")
  p.add_argument("--plain", action="store_true",
                 help="ours without the package's CPU settings (XLA flag, malloc, "
                      "the CPU-only custom gradients)")
  p.add_argument("--num-classes", type=int, default=1000)
  p.add_argument("--channels", type=int, default=3)
  p.add_argument("--model-kwargs", default="", metavar="K=V,...",
                 help="model field overrides, e.g. stem=small,width=8")
  p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                 help="any other configs/default.py field, e.g. weight_decay=1e-4")
  p.add_argument("--worker", choices=runner.SIDES, help=argparse.SUPPRESS)
  p.add_argument("--settings", help=argparse.SUPPRESS)
  return p


def _worker(side: str, settings_json: str) -> None:
  settings = runner.Settings.from_json(settings_json)
  try:
    result = runner.worker(side, settings)
  except (peers.PeerError, ValueError) as e:
    sys.exit("error: " + " ".join(str(e).split()))
  print(runner.RESULT_PREFIX + json.dumps(result), flush=True)


def main(argv: list[str] | None = None) -> None:
  p = parser()
  args = p.parse_args(argv)
  if args.worker:
    _worker(args.worker, args.settings)
    return
  missing = [f"--{n}" for n in ("model", "batch-size", "image-size")
             if getattr(args, n.replace("-", "_")) is None]
  if missing:
    p.error(f"the following arguments are required: {', '.join(missing)}")
  try:
    for name in ("batch_size", "image_size", "steps", "rounds", "num_classes", "channels"):
      if getattr(args, name) < 1:
        raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
      raise ValueError("--warmup must be >= 0")
    fields = {}
    for item in args.set:
      fields.update(runner.key_values(item, "--set"))
    settings = runner.Settings(
        model=args.model, batch_size=args.batch_size, image_size=args.image_size,
        mode=args.mode, dtype=args.dtype, steps=args.steps, warmup=args.warmup,
        num_classes=args.num_classes, channels=args.channels,
        model_kwargs=runner.key_values(args.model_kwargs, "--model-kwargs"), fields=fields,
        plain=args.plain, peer_compile=args.peer_compile)
    if args.peer == "plain" and args.plain:
      raise ValueError("--peer plain compares against the plain path; drop --plain")
    if args.peer in peers.PEERS:  # before anything starts: one line, no traceback
      peers.check(args.peer, args.model, args.dtype, args.channels, settings.model_kwargs,
                  args.image_size)
    result = runner.compare(settings, args.peer, args.rounds)
  except (ValueError, peers.PeerError, runner.BenchmarkError) as e:
    print("error: " + " ".join(str(e).split()), file=sys.stderr)
    sys.exit(2)
  print(json.dumps(result), flush=True)


if __name__ == "__main__":
  main()
