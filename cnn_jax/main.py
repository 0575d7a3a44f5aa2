"""Entry point: `python -m cnn_jax.main --config=configs/fashion_mnist.py [--workdir=DIR]`.

Config fields are overridden with `--config.FIELD=VALUE`; a config file may take an
argument after a colon (`--config=configs/resnet.py:resnet50`). Every mistake a user can
fix (unknown model / dataset / field, a batch the devices do not divide, an image too
small for the model, missing data) is reported as one line before anything compiles.
"""

from __future__ import annotations

import os
import sys
import traceback

from absl import flags, logging

from cnn_jax import cli, flag_parsing, platform
from cnn_jax.cli import UsageError  # noqa: F401  (re-exported: tests and users)


def check_config(config) -> None:
  """Validates everything that can be checked without compiling; raises UsageError."""
  import math

  import jax

  from cnn_jax import data, models
  from cnn_jax.data.augment import AUGMENTATIONS
  from cnn_jax.data.eval_protocols import JPEG_ONLY, PROTOCOLS
  from cnn_jax.train.loop import DTYPES
  from cnn_jax.train.optimizers import (OPTIMIZERS, SCHEDULES, WEIGHT_DECAY_MODES,
                                        check_weight_decay)

  try:
    spec = models.spec(config.model)
    ds_info = data.info(config.dataset)
  except ValueError as e:
    raise UsageError(str(e)) from None
  for field, value, allowed in (("dtype", config.dtype, DTYPES),
                                ("optimizer", config.optimizer, OPTIMIZERS),
                                ("lr_schedule", config.lr_schedule, SCHEDULES),
                                ("weight_decay_mode", config.weight_decay_mode,
                                 WEIGHT_DECAY_MODES),
                                ("augment", config.augment, AUGMENTATIONS),
                                ("eval_protocol", config.get("eval_protocol", "center"),
                                 PROTOCOLS)):
    if value not in allowed:
      raise UsageError(f"unknown {field} {value!r}; set --config.{field} to one of "
                       f"{', '.join(sorted(allowed))}")
  if config.get("eval_protocol", "center") in JPEG_ONLY and not ds_info.jpeg:
    raise UsageError(data.protocol_needs_jpeg(config.eval_protocol, config.dataset))
  # Step counts and rates that would divide by zero after compiling or train backwards.
  for field, what in (("log_every_steps", "steps between log lines"),
                      ("checkpoint_every_steps", "steps between checkpoints"),
                      ("keep_checkpoints", "checkpoints kept")):
    if config[field] < 1:
      raise UsageError(f"{field}={config[field]} must be >= 1 ({what}); set "
                       f"--config.{field}")
  if not config.eval_every_epochs > 0:
    raise UsageError(f"eval_every_epochs={config.eval_every_epochs} must be > 0 (the run is "
                     f"also evaluated at its end); set --config.eval_every_epochs, e.g. 1")
  if not (math.isfinite(config.learning_rate) and config.learning_rate >= 0):
    raise UsageError(f"learning_rate={config.learning_rate} must be a finite number >= 0; "
                     f"set --config.learning_rate")
  if config.num_train_steps < -1:
    raise UsageError(f"num_train_steps={config.num_train_steps} must be >= 0 (0: evaluate "
                     f"only), or -1 to train num_epochs; set --config.num_train_steps")
  if config.num_train_steps == -1 and not (math.isfinite(config.num_epochs)
                                           and config.num_epochs > 0):
    raise UsageError(f"num_epochs={config.num_epochs} must be > 0 (num_train_steps=-1 "
                     f"trains num_epochs); set --config.num_epochs, or "
                     f"--config.num_train_steps=0 to only evaluate")
  if config.image_size < 1:
    raise UsageError(f"image_size={config.image_size} must be >= 1 (the side in pixels); "
                     f"set --config.image_size, e.g. {ds_info.native_size or spec.input_size}")
  try:
    check_weight_decay(config)
  except ValueError as e:
    raise UsageError(str(e)) from None
  n_dev, n_proc = jax.device_count(), jax.process_count()
  for field in ("batch_size", "eval_batch_size"):
    value = config[field]
    if value <= 0 or value % n_dev or value % n_proc:
      raise UsageError(
          f"{field}={value} must be a positive multiple of the {n_dev} devices; set "
          f"--config.{field} to e.g. {max(n_dev, (max(value, 1) // n_dev) * n_dev)}")
  from cnn_jax.train.loop import model_kwargs
  try:
    kwargs = model_kwargs(config)
  except ValueError as e:
    raise UsageError(str(e)) from None
  try:
    model = models.create(config.model, **kwargs)
    fits = _accepts(model, config.image_size, ds_info.channels)
  except ValueError as e:  # a misspelt model_kwargs name or value
    raise UsageError(f"{config.model}: {e}; fix --config.model_kwargs") from None
  if not fits:
    if config.image_size < spec.min_input_size:
      raise UsageError(
          f"image_size={config.image_size} is too small for {config.model} (the registry "
          f"model needs >= {spec.min_input_size}); raise --config.image_size or use a "
          f"small-image variant (e.g. resnet18 with --config.model_kwargs.stem=small)")
    raise UsageError(
        f"image_size={config.image_size} does not fit {config.model} (paper size "
        f"{spec.input_size}); set --config.image_size={spec.input_size}, or for a model "
        f"with fully-connected layers use its dense evaluation mode (model_kwargs.dense_eval)")
  if config.get("init_from"):
    # An image folder's class count is known once it is prepared; the classifier may
    # differ anyway (it keeps its fresh initialisation).
    _check_init_from(config, models.create(config.model, num_classes=ds_info.num_classes
                                           or 2, **kwargs), ds_info.channels)


def _check_init_from(config, model, channels: int) -> None:
  """The converted checkpoint's variable shapes against the model's (traced, not
  compiled): a mismatch beyond the classifier is a UsageError before anything is written."""
  import functools

  import jax
  import jax.numpy as jnp

  from cnn_jax.train import checkpoint
  from cnn_jax.train.loop import check_init_from_shapes, tree_shapes

  variables = jax.eval_shape(
      functools.partial(model.init, train=False), jax.random.key(0),
      jax.ShapeDtypeStruct((1, config.image_size, config.image_size, channels), jnp.float32))
  ours = tree_shapes({"params": variables["params"],
                      "batch_stats": variables.get("batch_stats", {})})
  try:
    theirs = tree_shapes(checkpoint.pretrained_structure(config.init_from))
    if not theirs:  # an emptied variables/ folder reads as an empty tree
      raise ValueError("no arrays in its variables/ folder")
  except Exception as e:  # noqa: BLE001 — orbax raises many kinds for a damaged tree
    raise UsageError(f"init_from={config.init_from}: cannot read its variables "
                     f"({type(e).__name__}: {' '.join(str(e).split())[:200]}); write it "
                     f"again with python -m cnn_jax.convert") from None
  try:
    check_init_from_shapes(config, ours, theirs)
  except ValueError as e:
    raise UsageError(str(e)) from None


def _accepts(model, size: int, channels: int) -> bool:
  """Traces (never compiles) the model at `size`: no error and no empty feature map."""
  import functools

  import jax
  import jax.numpy as jnp

  init = functools.partial(model.init, train=False)
  try:
    variables = jax.eval_shape(init, jax.random.key(0),
                               jax.ShapeDtypeStruct((1, size, size, channels), jnp.float32))
  except ValueError as e:
    if str(e).startswith("unknown"):  # a module's own check of a field's value
      raise
    return False
  except Exception:  # noqa: BLE001 — any shape error means the input is too small
    return False
  return all(0 not in x.shape for x in jax.tree.leaves(variables.get("intermediates", {})))


def configure_compile_cache(config) -> str | None:
  """JAX's persistent compilation cache unless `config.compile_cache` is False (a rerun
  or another seed then loads its programs instead of compiling them); the directory or None."""
  if not config.get("compile_cache", True):
    return None
  return platform.enable_compilation_cache()


VERBOSE = flags.DEFINE_bool("verbose", False,
                            "Print the traceback behind an error line (errors are one "
                            "line without it).")

# How XLA, the allocators and tf.data (the input pipeline) report memory that does not
# fit (CPU, GPU and TPU).
_OOM_MARKERS = ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory",
                "Failed to allocate", "Allocator ran out", "OOM when allocating")


def failure_line(e: BaseException, config, workdir: str) -> str:
  """What a run's failure says on its one `error:` line: the problem and the fix.

  The loop's own errors (UsageError, DataError, CheckpointError, DivergenceError) and
  library ValueErrors carry their message; running out of memory names the batch and
  image size asked and the flags to change; a failed read or write names the path; any
  other exception is named with a pointer to --verbose."""
  text = " ".join(str(e).split())
  if isinstance(e, MemoryError) or any(m in text for m in _OOM_MARKERS):
    import jax
    n = jax.device_count()
    return (f"out of memory with batch_size={config.batch_size} (eval_batch_size="
            f"{config.eval_batch_size}) at image_size={config.image_size} on {n} "
            f"{jax.default_backend()} device{'s' if n > 1 else ''} ({text[:160]}); lower "
            f"--config.batch_size (and --config.eval_batch_size) or --config.image_size, "
            f"or spread the batch over more devices")
  if isinstance(e, ValueError):  # UsageError, DataError and the loop's errors are too
    return text
  if isinstance(e, OSError):
    where = f" {e.filename}" if e.filename else ""
    return (f"cannot read or write{where}: {e.strerror or text}; check the space and "
            f"permissions of --workdir={workdir} (rerunning resumes from its newest "
            f"complete checkpoint)")
  return (f"{type(e).__name__}: {text[:300]} (unexpected; rerun with --verbose for the "
          f"traceback)")


def main(argv) -> None:
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}; everything is a flag: "
             f"--config=FILE[:ARG], --config.FIELD=VALUE, --workdir=DIR")
  cli.quiet_libraries()
  try:
    config = cli.load_config()
    workdir = cli.WORKDIR.value or os.path.join("workdirs",
                                                f"{config.model}_{config.dataset}")
    cli.check_workdir(workdir)
    cli.check_process_flags(cli.COORDINATOR.value, cli.NUM_PROCESSES.value,
                            cli.PROCESS_ID.value)
  except UsageError as e:
    sys.exit(f"error: {e}")

  import jax

  from cnn_jax.data.errors import DataError

  cli.initialize_distributed()
  if jax.process_index() != 0:
    logging.set_verbosity(logging.WARNING)
  try:
    check_config(config)
    from cnn_jax import data
    data.prepare(config)  # builds the TFDS dataset once, or explains how to get it
  except (UsageError, DataError) as e:
    if VERBOSE.value:
      traceback.print_exc()
    sys.exit(f"error: {e}")

  configure_compile_cache(config)
  from cnn_jax.train.loop import train_and_evaluate
  logging.info("workdir: %s", os.path.abspath(workdir))
  try:
    results = train_and_evaluate(config, workdir, source=cli.override_summary())
  except Exception as e:  # noqa: BLE001 — every failure is one line; --verbose: traceback
    if VERBOSE.value:
      traceback.print_exc()
    sys.exit(f"error: {failure_line(e, config, workdir)}")
  if results.get("preempted"):
    # Checkpointed: EX_TEMPFAIL, as `python -m cnn_jax.sweep`, so a scheduler requeues;
    # rerunning the same command resumes.
    sys.exit(75)


def run() -> None:
  flag_parsing.run(main, required=["config"], parser=cli.parse_flags)


if __name__ == "__main__":
  run()
