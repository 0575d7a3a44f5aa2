"""Entry point: `python -m cnn_jax.main --config=configs/fashion_mnist.py [--workdir=DIR]`.

Config fields are overridden with `--config.FIELD=VALUE`; a config file may take an
argument after a colon (`--config=configs/resnet.py:resnet50`). Every mistake a user can
fix (unknown model / dataset / field, a batch the devices do not divide, an image too
small for the model, missing data) is reported as one line before anything compiles.
"""

from __future__ import annotations

import logging as std_logging
import os
import re
import sys

from cnn_jax import platform

platform.configure_cpu()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:arg]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None,
                               "Where checkpoints, TensorBoard events and results go; "
                               "default workdirs/<model>_<dataset>. Rerun to resume.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0 for jax.distributed (multi-host).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-host job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (0-based).")


class _QuietLibraries:
  """Keeps INFO chatter of orbax, clu's console writer and JAX's backend probing off the
  console; their warnings and errors still show."""
  NOISY = ("/orbax/", "/clu/metric_writers/logging_writer", "/jax/_src/xla_bridge")

  def filter(self, record) -> bool:
    return record.levelno >= std_logging.WARNING or not any(
        n in record.pathname for n in self.NOISY)


class UsageError(Exception):
  """A problem in the command or config that the user can fix; printed as one line."""


def check_config(config) -> None:
  """Validates everything that can be checked without compiling; raises UsageError."""
  import jax

  from cnn_jax import data, models
  from cnn_jax.data.augment import AUGMENTATIONS
  from cnn_jax.train.loop import DTYPES
  from cnn_jax.train.optimizers import OPTIMIZERS, SCHEDULES

  try:
    spec = models.spec(config.model)
    ds_info = data.info(config.dataset)
  except ValueError as e:
    raise UsageError(str(e)) from None
  for field, value, allowed in (("dtype", config.dtype, DTYPES),
                                ("optimizer", config.optimizer, OPTIMIZERS),
                                ("lr_schedule", config.lr_schedule, SCHEDULES),
                                ("augment", config.augment, AUGMENTATIONS)):
    if value not in allowed:
      raise UsageError(f"unknown {field} {value!r}; set --config.{field} to one of "
                       f"{', '.join(sorted(allowed))}")
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
  model = models.create(config.model, **kwargs)
  if not _accepts(model, config.image_size, ds_info.channels):
    if config.image_size < spec.min_input_size:
      raise UsageError(
          f"image_size={config.image_size} is too small for {config.model} (the registry "
          f"model needs >= {spec.min_input_size}); raise --config.image_size or use a "
          f"small-image variant (e.g. resnet18 with --config.model_kwargs.stem=small)")
    raise UsageError(
        f"image_size={config.image_size} does not fit {config.model} (paper size "
        f"{spec.input_size}); set --config.image_size={spec.input_size}, or for a model "
        f"with fully-connected layers use its dense evaluation mode (model_kwargs.dense_eval)")


def _accepts(model, size: int, channels: int) -> bool:
  """Traces (never compiles) the model at `size`: no error and no empty feature map."""
  import functools

  import jax
  import jax.numpy as jnp

  init = functools.partial(model.init, train=False)
  try:
    variables = jax.eval_shape(init, jax.random.key(0),
                               jax.ShapeDtypeStruct((1, size, size, channels), jnp.float32))
  except Exception:  # noqa: BLE001 — any shape error means the input is too small
    return False
  return all(0 not in x.shape for x in jax.tree.leaves(variables.get("intermediates", {})))


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  logging.get_absl_handler().addFilter(_QuietLibraries())
  config = _CONFIG.value
  if config is None:
    sys.exit("error: --config is required, e.g. --config=configs/fashion_mnist.py")
  try:
    config.model  # ml_collections defers a config file's load errors to first access
  except OSError as e:
    detail = " ".join(str(e).split()).split("Attempted", 1)[-1]
    sys.exit(f"error: cannot load the --config file:{detail}; pass a file such as "
             f"configs/fashion_mnist.py")

  import jax

  from cnn_jax import parallel
  from cnn_jax.data.errors import DataError

  parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  if jax.process_index() != 0:
    logging.set_verbosity(logging.WARNING)
  workdir = _WORKDIR.value or os.path.join("workdirs", f"{config.model}_{config.dataset}")
  try:
    check_config(config)
    from cnn_jax import data
    data.prepare(config)  # builds the TFDS dataset once, or explains how to get it
  except (UsageError, DataError) as e:
    sys.exit(f"error: {e}")

  from cnn_jax.train.loop import train_and_evaluate
  logging.info("workdir: %s", os.path.abspath(workdir))
  train_and_evaluate(config, workdir)


def _parse_flags(argv):
  """absl's parser, but a bad --config.FIELD is one line instead of a traceback."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit("error: " + " ".join(str(e).split()))
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # ml_collections reports an unknown field as the repr of "'name'\nDid you mean ...".
    bad = [a.split("=")[0][len("--"):] for a in argv[1:] if a.startswith("--config.")]
    name = re.search(r"'([A-Za-z_][A-Za-z0-9_]*)", str(e))
    culprit = [b for b in bad if name and b.endswith("." + name.group(1))] or bad
    hint = re.search(r'Did you mean "[^"]+"', str(e))
    sys.exit(f"error: unknown config field {', '.join(culprit)}"
             f"{' (' + hint.group(0) + '?)' if hint else ''}; fields are listed in "
             f"configs/default.py, a model's by cnn_jax.models.overridable_fields(name)")


def run() -> None:
  flags.mark_flags_as_required(["config"])
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  run()
