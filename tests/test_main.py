"""The CLI: every user mistake is one line on stderr, a non-zero exit, and no compile."""

import logging
import os
import subprocess
import sys

import pytest
from conftest import QUICK_SHUFFLE, ROOT, run_cli, subprocess_env


def run_main(*args, devices: int = 1, timeout: int = 120):
  """A real `python -m cnn_jax.main` (where the case needs a fresh process: simulated
  devices); `main_here` runs the other cases in this process (conftest.run_cli)."""
  return subprocess.run([sys.executable, "-m", "cnn_jax.main", *args], cwd=ROOT,
                        env=subprocess_env(devices),
                        capture_output=True, text=True, timeout=timeout)


def main_here(capfd, *args):
  return run_cli("cnn_jax.main", list(args), capfd)


def error_line(proc) -> str:
  lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert proc.returncode != 0, proc.stderr[-2000:]
  assert len(lines) == 1, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr and "compile" not in proc.stderr
  return lines[0]


@pytest.mark.parametrize("override,expected", [
    ("--config.model=resnet5", "unknown model 'resnet5': did you mean resnet56, resnet50"),
    ("--config.dataset=cifar11", "unknown dataset 'cifar11'; choose one of"),
    ("--config.nonexistent=1", "unknown config field config.nonexistent;"),
    ("--config.model_kwargs.widht=3", 'no field(s) widht (Did you mean "width"?)'),
    ("--config.model_kwargs.stem=smal", "unknown stem 'smal'; choose one of"),
    ("--config.batch_sise=3", 'unknown config field config.batch_sise (Did you mean '
                              '"batch_size"?)'),
    ("--config.optimizer=sgdd", "unknown optimizer 'sgdd'"),
    # Divided by after compiling; a misspelt mode silently meant no weight decay at all.
    ("--config.log_every_steps=0", "log_every_steps=0 must be >= 1"),
    ("--config.weight_decay_mode=decopled", "unknown weight_decay_mode 'decopled'"),
    ("--config.eval_protocol=ten_crop", "eval_protocol 'ten_crop' needs a JPEG dataset"),
    # Raised by the training loop once the split's size is known, still before compiling.
    ("--config.batch_size=60032", "has 60000 examples, fewer than the global "
                                  "batch_size=60032, so an epoch has no step; set "
                                  "--config.batch_size to at most 60000"),
])
def test_bad_config_is_one_line(fashion_data_dir, tmp_path, capfd, override, expected):
  proc = run_cli("cnn_jax.main", ["--config=configs/fashion_mnist.py",
                                  f"--workdir={tmp_path}",
                                  f"--config.data_dir={fashion_data_dir}", override], capfd)
  assert expected in error_line(proc)
  assert not os.path.exists(tmp_path / "checkpoints")


def test_batch_not_divisible_by_devices(fashion_data_dir, tmp_path):
  proc = run_main("--config=configs/fashion_mnist.py", f"--workdir={tmp_path}",
                  f"--config.data_dir={fashion_data_dir}", "--config.batch_size=12", devices=8)
  assert "batch_size=12 must be a positive multiple of the 8 devices" in error_line(proc)


def test_workdir_of_another_run_is_one_line(fashion_data_dir, tmp_path, capfd):
  from configs import fashion_mnist
  earlier = fashion_mnist.get_config()
  earlier.data_dir = fashion_data_dir
  earlier.model_kwargs.width = 8
  saved = earlier.to_json_best_effort(indent=2, sort_keys=True)
  (tmp_path / "config.json").write_text(saved)
  proc = main_here(capfd, "--config=configs/fashion_mnist.py", f"--workdir={tmp_path}",
                   f"--config.data_dir={fashion_data_dir}")
  line = error_line(proc)
  assert "holds a run of another config (model_kwargs.width: 8 -> 16)" in line
  assert "choose another --workdir" in line
  assert sorted(os.listdir(tmp_path)) == ["config.json"]
  assert (tmp_path / "config.json").read_text() == saved


def test_missing_config_file(tmp_path, capfd):
  proc = main_here(capfd, "--config=configs/no_such_config.py", f"--workdir={tmp_path}")
  assert "cannot load the --config file" in error_line(proc)


def test_missing_dataset_says_how_to_get_it(tmp_path, capfd):
  proc = main_here(capfd, "--config=configs/fashion_mnist.py", f"--workdir={tmp_path}",
                   f"--config.data_dir={tmp_path / 'empty'}",
                   f"--config.source_dir={tmp_path / 'nothing_here'}")
  line = error_line(proc)
  assert "apt-get install dataset-fashion-mnist" in line and "source_dir" in line


def test_corrupt_source_file_is_reported_not_built(tmp_path, capfd):
  src = tmp_path / "src"
  src.mkdir()
  for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
    (src / name).write_bytes(b"not gzip")
  proc = main_here(capfd, "--config=configs/fashion_mnist.py", f"--workdir={tmp_path / 'wd'}",
                   f"--config.data_dir={tmp_path / 'tfds'}", f"--config.source_dir={src}")
  assert "cannot read" in error_line(proc)
  assert not os.path.exists(tmp_path / "tfds" / "fashion_mnist" / "3.0.1" / "dataset_info.json")


@pytest.mark.slow
def test_cli_trains_and_resumes(fashion_data_dir, tmp_path, capfd, caplog):
  """In this process (the fault tests run the real process); the log is caplog's."""
  caplog.set_level(logging.INFO)
  args = ["--config=configs/fashion_mnist.py", f"--workdir={tmp_path}",
          f"--config.data_dir={fashion_data_dir}", "--config.num_train_steps=6",
          "--config.model_kwargs.width=4", "--config.batch_size=32",
          "--config.log_every_steps=3", "--config.eval_max_examples=500", QUICK_SHUFFLE]
  first = main_here(capfd, *args)
  assert first.returncode == 0, first.stderr[-3000:]
  assert "steps/s" in caplog.text and "ETA" in caplog.text
  results = (tmp_path / "results.json").read_text()
  caplog.clear()
  again = main_here(capfd, *args)  # finished: its results stay as they were
  assert again.returncode == 0 and "holds a finished run of 6 steps" in caplog.text
  assert (tmp_path / "results.json").read_text() == results


def test_image_too_small_for_model():
  from configs import fashion_mnist
  from cnn_jax.main import UsageError, check_config
  config = fashion_mnist.get_config()
  config.model, config.model_kwargs = "alexnet", {}
  with pytest.raises(UsageError, match="image_size=28 is too small for alexnet"):
    check_config(config)
  config.model, config.image_size = "resnet18", 28  # the ImageNet stem still fits 28 px
  check_config(config)


@pytest.mark.parametrize("changes,expected", [
    ({"log_every_steps": 0}, "log_every_steps=0 must be >= 1"),
    ({"checkpoint_every_steps": -5}, "checkpoint_every_steps=-5 must be >= 1"),
    ({"keep_checkpoints": 0}, "keep_checkpoints=0 must be >= 1"),
    ({"eval_every_epochs": 0.0}, "eval_every_epochs=0.0 must be > 0"),
    ({"weight_decay_mode": "L2"}, "unknown weight_decay_mode 'L2'; set "
                                  "--config.weight_decay_mode to one of decoupled, l2"),
    ({"weight_decay": -1e-4}, "weight_decay=-0.0001 must be >= 0"),
    ({"optimizer": "adamw"}, "optimizer=adamw applies weight_decay=0.0005 itself "
                             "(decoupled); weight_decay_mode=l2 would add it to the loss "
                             "as well: set --config.weight_decay_mode=decoupled"),
    ({"learning_rate": -0.1}, "learning_rate=-0.1 must be a finite number >= 0"),
    ({"learning_rate": float("nan")}, "learning_rate=nan must be a finite number >= 0"),
    ({"eval_protocol": "dense"}, "eval_protocol 'dense' needs a JPEG dataset"),
    ({"eval_protocol": "tencrop"}, "unknown eval_protocol 'tencrop'"),
])
def test_config_numbers_and_modes(changes, expected):
  from configs import fashion_mnist
  from cnn_jax.main import UsageError, check_config
  config = fashion_mnist.get_config()  # nesterov, weight decay 5e-4 as l2
  config.update(changes)
  with pytest.raises(UsageError) as e:
    check_config(config)
  assert expected in str(e.value)


def test_adamw_takes_decoupled_decay_and_zero_rate_is_allowed():
  from configs import fashion_mnist
  from cnn_jax.main import check_config
  config = fashion_mnist.get_config()
  config.update({"optimizer": "adamw", "weight_decay_mode": "decoupled"})
  check_config(config)
  config.update({"weight_decay_mode": "l2", "weight_decay": 0.0, "learning_rate": 0.0})
  check_config(config)  # nothing to decay twice; a zero rate (e.g. BN statistics only)


def test_compile_cache_field_turns_the_persistent_cache_on_or_off(monkeypatch):
  """`compile_cache` (configs/default.py, default True): on, JAX's persistent cache is
  configured in the sweep's directory (or $JAX_COMPILATION_CACHE_DIR); off, none is."""
  import jax

  from configs import default
  from cnn_jax import platform
  from cnn_jax.main import configure_compile_cache
  saved = {k: getattr(jax.config, k) for k in (
      "jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")}
  config = default.get_config()
  assert config.compile_cache is True
  try:
    jax.config.update("jax_compilation_cache_dir", None)  # conftest's test cache: unset
    config.compile_cache = False
    assert configure_compile_cache(config) is None
    assert not jax.config.jax_compilation_cache_dir
    config.compile_cache = True
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    assert configure_compile_cache(config) == platform.COMPILATION_CACHE_DIR
    assert jax.config.jax_compilation_cache_dir == os.path.join(
        os.path.expanduser("~"), ".cache", "cnn_jax", "xla")
    jax.config.update("jax_compilation_cache_dir", None)
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/tmp/elsewhere")
    assert configure_compile_cache(config) == "/tmp/elsewhere"
  finally:
    for k, v in saved.items():
      jax.config.update(k, v)


@pytest.mark.parametrize("module", ["cnn_jax.main", "cnn_jax.sweep.runner",
                                    "cnn_jax.data.prepare", "cnn_jax.convert.__main__"])
def test_importing_an_entry_point_changes_no_process_setting(module):
  """configure_cpu runs in each entry point's run(), not at import: importing the module
  leaves XLA_FLAGS and TF's log level as they were."""
  code = (f"import os, {module}\n"
          "print(repr(os.environ.get('XLA_FLAGS')), repr(os.environ.get('TF_CPP_MIN_LOG_LEVEL')))")
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "TF_CPP_MIN_LOG_LEVEL")}
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  xla_flags, tf_level = proc.stdout.split()
  assert xla_flags == "None" and tf_level != "'2'"  # (importing TensorFlow itself sets 1)


@pytest.mark.parametrize("module", ["cnn_jax.main", "cnn_jax.sweep", "cnn_jax.convert",
                                    "cnn_jax.data.prepare"])
def test_help_exits_0_with_the_usage(module):
  proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT,
                        env=subprocess_env(), capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() and "Traceback" not in proc.stderr


def test_shipped_rng_setting():
  """The end-to-end subprocesses run JAX's partitionable threefry, as production does (the
  in-process tests switch it off for compile speed: tests/conftest.py)."""
  code = ("from cnn_jax import platform; platform.start_process(); import cnn_jax.main; "
          "import jax; print(jax.config.jax_threefry_partitionable)")
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(),
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0 and proc.stdout.split()[-1] == "True", proc.stderr[-2000:]
