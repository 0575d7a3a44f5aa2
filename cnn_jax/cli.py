"""What the command-line entry points share: the --config flag, loading a config file
with its `--config.FIELD=VALUE` overrides, and one-line errors.

`python -m cnn_jax.main` and `python -m cnn_jax.sweep` both take
`--config=FILE[:ARG]` plus overrides. A field the config file does not define is an
error, except under `model_kwargs`: any field `cnn_jax.models.overridable_fields(model)`
lists may be set there (`--config.model_kwargs.stem=small`) whether or not the config
already sets it; the model itself then checks the name and the value.
"""

from __future__ import annotations

import difflib
import logging as std_logging
import importlib.util
import os
import re
import sys
import traceback

from absl import flags, logging
from ml_collections import config_dict, config_flags

from cnn_jax import flag_parsing

MODEL_KWARGS = "model_kwargs"

CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file (configs/*.py[:arg] or experiments/*.py[:arg]).",
    lock_config=False, accept_new_attributes=True)
WORKDIR = flags.DEFINE_string("workdir", None,
                              "Where checkpoints, TensorBoard events and results go "
                              "(cnn_jax.main's default: workdirs/<model>_<dataset>). Rerun "
                              "the same command to resume.")
COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                  "host:port of process 0 for jax.distributed (multi-host).")
NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-host job.")
PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (0-based).")
HEARTBEAT_TIMEOUT = flags.DEFINE_integer(
    "heartbeat_timeout", None, "Multi-host: seconds without a heartbeat before a process "
    "counts as dead and the others exit non-zero (JAX's default: 100).", lower_bound=1)


def initialize_distributed() -> None:
  """`jax.distributed` from the multi-host flags (or the cluster's environment)."""
  from cnn_jax import parallel
  parallel.initialize_distributed(COORDINATOR.value, NUM_PROCESSES.value, PROCESS_ID.value,
                                  HEARTBEAT_TIMEOUT.value)


class _QuietLibraries:
  """Keeps INFO chatter of orbax, clu's console writer and JAX's backend probing off the
  console; their warnings and errors still show."""
  NOISY = ("/orbax/", "/clu/metric_writers/logging_writer", "/jax/_src/xla_bridge")

  def filter(self, record) -> bool:
    return record.levelno >= std_logging.WARNING or not any(
        n in record.pathname for n in self.NOISY)


def quiet_libraries() -> None:
  logging.get_absl_handler().addFilter(_QuietLibraries())


class UsageError(Exception):
  """A problem in the command or config that the user can fix; printed as one line."""


def _last_exception_line(text: str) -> str:
  """'ValueError: unknown ...' from a formatted traceback (what ml_collections wraps a
  config file's error in); the message alone."""
  lines = [l for l in text.strip().splitlines() if l.strip()]
  for line in reversed(lines):
    m = re.match(r"^(\w+(Error|Exception)): (.*)$", line.strip())
    if m:
      return m.group(3)
  return lines[-1].strip() if lines else text


def parse_flags(argv):
  """flag_parsing.parse (help exits 0, one-line flag errors) plus one-line errors for a
  bad --config file or override."""
  flag_parsing.exit_on_help(argv)
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    message = str(e)
    if "Error whilst parsing config file" in message:
      sys.exit(f"error: bad --config argument: {_last_exception_line(message)}")
    sys.exit("error: " + " ".join(message.split()))
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    bad = [a.split("=")[0][len("--"):] for a in argv[1:] if a.startswith("--config.")]
    sys.exit(f"error: cannot apply {', '.join(bad) or 'the config overrides'}: "
             f"{' '.join(str(e).split())}; fields are listed in configs/default.py")


def config_file_and_arg() -> tuple[str, str | None]:
  """The --config value split into the file and its argument (None without a colon)."""
  value = config_flags.get_config_filename(flags.FLAGS["config"])
  path, _, arg = value.partition(":")
  return path, (arg if ":" in value else None)


def load_module(path: str):
  """Imports a config or experiment file by path (it is Python: run only trusted files)."""
  if not os.path.isfile(path):
    raise UsageError(f"cannot load {path}: no such file; pass a file such as "
                     f"configs/fashion_mnist.py or experiments/vgg_lrn.py")
  name = "cnn_jax_config_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
  if root not in sys.path:  # config files import `configs.default` from their repository
    sys.path.insert(0, root)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # noqa: BLE001 — a broken config file is the user's to fix
    raise UsageError(f"cannot load {path}: {type(e).__name__}: "
                     f"{' '.join(str(e).split())}") from None
  return module


def call_config_fn(module, path: str, fn_name: str, arg: str | None):
  """`module.fn_name(arg)` with a config file's ValueError as a UsageError."""
  fn = getattr(module, fn_name, None)
  if fn is None:
    raise UsageError(f"{path} has no {fn_name}(arg) function")
  try:
    return fn() if arg is None else fn(arg)
  except (ValueError, TypeError, KeyError) as e:
    detail = _last_exception_line(traceback.format_exc()) if isinstance(e, KeyError) else e
    raise UsageError(f"bad --config argument for {path}: "
                     f"{' '.join(str(detail).split())}") from None


def _flat_keys(config) -> set[str]:
  keys = set()
  for k, v in config.items():
    keys.add(k)
    if isinstance(v, config_dict.ConfigDict):
      keys.update(f"{k}.{sub}" for sub in _flat_keys(v))
  return keys


def check_new_fields(overridden, defined: set[str]) -> None:
  """Refuses an override of a field outside `model_kwargs` that the config lacks."""
  for key in overridden:
    if key in defined or key.startswith(MODEL_KWARGS + "."):
      continue
    close = difflib.get_close_matches(key, sorted(defined), n=1, cutoff=0.6)
    hint = f' (Did you mean "{close[0]}"?)' if close else ""
    raise UsageError(f"unknown config field config.{key}{hint}; fields are listed in "
                     f"configs/default.py, a model's by cnn_jax.models.overridable_fields(name)")


def load_config():
  """The parsed --config with its overrides, checked and locked; UsageError otherwise."""
  config = CONFIG.value
  if config is None:
    raise UsageError("--config is required, e.g. --config=configs/fashion_mnist.py")
  try:
    config.model  # ml_collections defers a config file's load errors to first access
  except OSError as e:
    detail = " ".join(str(e).split()).split("Attempted", 1)[-1]
    raise UsageError(f"cannot load the --config file:{detail}; pass a file such as "
                     f"configs/fashion_mnist.py") from None
  path, arg = config_file_and_arg()
  pristine = call_config_fn(load_module(path), path, "get_config", arg)
  check_new_fields(config_flags.get_override_values(flags.FLAGS["config"]),
                   _flat_keys(pristine))
  config.lock()
  return config


def check_workdir(workdir: str) -> None:
  """UsageError unless `workdir` is a directory or can be made one (checked before
  anything is written: a file in its place or in place of a parent)."""
  path = os.path.abspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise UsageError(f"--workdir={workdir} is a file, not a directory; choose another "
                     f"--workdir")
  parent = os.path.dirname(path)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise UsageError(f"--workdir={workdir} cannot be created: {parent} is a file; choose "
                     f"another --workdir")
  if not os.path.exists(path) and not os.access(parent, os.W_OK | os.X_OK):
    raise UsageError(f"--workdir={workdir} cannot be created: {parent} is not writable; "
                     f"choose another --workdir")


def check_process_flags(coordinator: str | None, num_processes: int | None,
                        process_id: int | None) -> None:
  """The multi-host flags go together (jax.distributed would raise a bare ValueError)."""
  if num_processes is None and process_id is None and not coordinator:
    return
  if not coordinator:
    raise UsageError("--num_processes/--process_id need --coordinator_address=HOST:PORT "
                     "(process 0's address, the same on every process); drop them for a "
                     "one-process run")
  if num_processes is not None and num_processes < 1:
    raise UsageError(f"--num_processes={num_processes} must be >= 1")
  if process_id is not None and not 0 <= process_id < (num_processes or process_id + 1):
    raise UsageError(f"--process_id={process_id} must be in 0..{num_processes - 1} "
                     f"(--num_processes={num_processes})")


def override_summary() -> str:
  """'configs/x.py:arg --config.a=1 ...': what produced this run's config."""
  overrides = config_flags.get_override_values(flags.FLAGS["config"])
  value = config_flags.get_config_filename(flags.FLAGS["config"])
  return " ".join([value] + [f"--config.{k}={v!r}" for k, v in overrides.items()])
