import gc
import os

# `cnn_jax` and `configs` come from the installed package (`pip install -e .`); pytest.ini's
# `pythonpath` puts tests/ (for `from conftest import ...`, model_testing, convert_testing)
# and the repository root (for `from tests.test_data_imagenet import ...`) on sys.path.
# Tests see one CPU device unless a test starts its own subprocess with more.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras is the tests' JAX-backend reference (cnn_jax.convert.keras_module). TensorFlow's
# import (tf.data, in any test that builds an input pipeline or runs cnn_jax.main in this
# process) imports Keras too, which would otherwise start on its TensorFlow backend.
os.environ.setdefault("KERAS_BACKEND", "jax")

from cnn_jax import platform  # noqa: E402
from cnn_jax.convert.torch_import import block_triton  # noqa: E402

block_triton()  # torchvision's tests share a worker with TensorFlow (see torch_import.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A test's `python -m cnn_jax...` subprocess checks behaviour, not speed, and is mostly
# compile time: XLA's backend optimisations off halve it. (In-process tests choose per
# function: tests/model_testing.py's FAST_COMPILE.)
FAST_COMPILE_FLAG = "--xla_backend_optimization_level=0"
XLA_CACHE_DIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), "cnn_jax_test_xla_cache")
platform.configure_cpu()  # the same XLA CPU settings as `python -m cnn_jax.main`


def subprocess_env(devices: int = 1, fast_compile: bool = True) -> dict:
  """Environment for a test's `python -m cnn_jax...` subprocess: `devices` simulated CPU
  devices, fast compiles (unless the test compares layouts step by step: unoptimised
  programs round differently enough that 20 steps of SGD drift apart by 0.5%), and the
  session's persistent compilation cache (identical programs in several subprocesses,
  e.g. a reference run, compile once)."""
  flags = f"--xla_force_host_platform_device_count={devices}"
  return dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
              XLA_FLAGS=f"{flags} {FAST_COMPILE_FLAG}" if fast_compile else flags,
              JAX_COMPILATION_CACHE_DIR=XLA_CACHE_DIR,
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")

import jax  # noqa: E402

# Identical programs compiled by several tests (e.g. the runs of the resume test) are
# compiled once per session.
jax.config.update("jax_compilation_cache_dir", XLA_CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
# The random-number setting: production keeps JAX's default (`jax_threefry_partitionable`
# on, so a sharded dropout mask or initialiser is generated where its shard lives). The
# in-process tests switch it off because XLA:CPU compiles the partitionable threefry ~8x
# slower (~3 s per parameter shape on 2 cores), and they depend only on agreement within a
# run, never on particular random values. What ships is still what the end-to-end tests
# run: every `python -m cnn_jax...` subprocess (CLI, sweep, faults, multi-device and
# multi-process equivalence) starts without this line; `test_shipped_rng_setting` in
# tests/test_main.py checks that the subprocesses do run the default.
jax.config.update("jax_threefry_partitionable", False)

import pytest

# Python's cyclic collector, tuned for a test process: tracing allocates millions of small
# objects and the in-process tests keep many alive (cached jaxprs and executables), so with
# the default thresholds (a collection every 700 allocations) it took 15% of the model
# tests' time (22 s of 144 s for four test_models_* files, measured with gc.callbacks).
# Collected ~70x less often, with everything alive after collection frozen out of the
# scans, it takes 2 s; peak memory rose 4% (1.54 -> 1.61 GB). Nothing here depends on when
# a cycle is freed (cnn_jax.train.checkpoint collects explicitly where it matters).
gc.set_threshold(50_000, 20, 20)


def pytest_collection_finish(session):
  gc.collect()
  gc.freeze()


def _version(package: str) -> tuple[int, ...]:
  import importlib.metadata
  import re
  return tuple(int(x) for x in re.findall(r"\d+", importlib.metadata.version(package))[:3])


def pytest_configure(config):
  """Under `--dist loadgroup` (the Makefile's), pytest-xdist sends the tests of one
  `xdist_group` to one worker, so a group's shared run (a module fixture) is computed
  once. pytest 9.2 with pytest-xdist <= 3.8 loses the groups silently (pytest-xdist issue
  #1386) and every worker recomputes them: refused here with one line."""
  if (config.getoption("dist", default=None) == "loadgroup"
      and _version("pytest") >= (9, 2) and _version("pytest-xdist") <= (3, 8, 0)):
    raise pytest.UsageError(
        f"--dist loadgroup ignores xdist_group with pytest {pytest.__version__} and "
        f"pytest-xdist <= 3.8 (pytest-xdist issue #1386): install requirements.txt's pins")


FASHION_SOURCE = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(scope="session")
def fashion_data_dir():
  """A TFDS data_dir holding `fashion_mnist`, built from the Debian files once per machine:
  kept under $TMPDIR for later runs and shared by the xdist workers (one builds under a
  file lock, the other waits; ~25-65 s each time it was built per worker). Tests must not
  write into it: one that damages a dataset works on a copy."""
  import fcntl
  import shutil
  import tempfile
  import tensorflow_datasets as tfds
  if not os.path.exists(os.path.join(FASHION_SOURCE, "t10k-labels-idx1-ubyte.gz")):
    pytest.fail(f"Fashion-MNIST raw files missing in {FASHION_SOURCE}: "
                "apt-get install dataset-fashion-mnist (`make test` does this)")
  from cnn_jax.data import fashion_mnist
  root = os.path.join(os.environ.get("TMPDIR", "/tmp"), "cnn_jax_test_data")
  os.makedirs(root, exist_ok=True)
  data_dir = os.path.join(root, f"fashion_mnist_tfds_{tfds.__version__}")
  with open(os.path.join(root, "fashion_mnist.lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not tfds.builder("fashion_mnist", data_dir=data_dir).is_prepared():
      shutil.rmtree(data_dir, ignore_errors=True)
      building = tempfile.mkdtemp(dir=root, prefix="building_")
      fashion_mnist.builder(building, FASHION_SOURCE)
      os.rename(building, data_dir)  # whole or absent: a killed build leaves no data_dir
  return data_dir


# Tests that train on Fashion-MNIST fill a 1,024-example shuffle buffer, not the config's
# 60,000: filling that reads and decodes the whole training split before the first step
# (~5 s quiet, ~15 s under load, in every process); what the tests check does not depend
# on how far apart shuffled examples come from.
SHUFFLE_BUFFER = 1024
QUICK_SHUFFLE = f"--config.shuffle_buffer={SHUFFLE_BUFFER}"


def tiny_fashion_config(data_dir, **changes):
  """The quickstart config shrunk to a model that trains in seconds on 2 cores."""
  from configs import fashion_mnist
  config = fashion_mnist.get_config()
  config.data_dir = data_dir
  config.model_kwargs = {"stem": "small", "width": 8, "stage_sizes": (1, 1, 1, 1)}
  config.batch_size = 64
  config.eval_batch_size = 1000
  config.num_train_steps = 60
  config.log_every_steps = 20
  config.checkpoint_every_steps = 1000
  config.warmup_epochs = 0.0
  config.weight_decay = 0.0
  config.shuffle_buffer = SHUFFLE_BUFFER
  config.update(changes)
  return config


class CliResult:
  """What `run_cli` returns, shaped like subprocess.CompletedProcess."""

  def __init__(self, returncode: int, stderr: str):
    self.returncode, self.stderr = returncode, stderr


def _reset_flags() -> None:
  """absl's flags back to unparsed, without the `--config.FIELD` override flags that
  ml_collections defines while parsing `--config` (parsing again defines them anew). The
  root logger's level is kept: once absl's handler is installed, resetting `--verbosity`
  sets it to WARNING, which would hide an entry point's log from caplog."""
  import logging

  from absl import flags
  level = logging.root.level
  for name in list(flags.FLAGS):
    if name.startswith("config."):
      delattr(flags.FLAGS, name)
  flags.FLAGS.unparse_flags()
  logging.root.setLevel(level)


def run_cli(module: str, argv, capfd) -> CliResult:
  """`python -m MODULE *argv` run in this process, as the interpreter would run it: the
  module's `run()`, absl's flags parsed afresh and reset afterwards, a string exit code
  written to stderr with status 1. A subprocess costs ~6 s of imports per case; the
  exit-code contract itself is tested through real subprocesses (tests/test_bad_input.py
  test_exit_code_contract_through_a_real_process). Only for entry points whose flags can
  share a process with the tests' other imports (cnn_jax.main, cnn_jax.sweep). The
  persistent compilation cache setting the entry point may change is restored."""
  import importlib
  import sys

  entry = importlib.import_module(module)
  cache_dir = jax.config.jax_compilation_cache_dir
  saved_argv = sys.argv
  _reset_flags()
  sys.argv = [module, *argv]
  capfd.readouterr()
  try:
    entry.run()
    code = 0
  except SystemExit as e:
    code = e.code
  finally:
    sys.argv = saved_argv
    _reset_flags()
    jax.config.update("jax_compilation_cache_dir", cache_dir)
  err = capfd.readouterr().err
  if isinstance(code, str):  # Python prints a string exit code to stderr, exits 1
    err, code = err + code + "\n", 1
  return CliResult(code or 0, err)
