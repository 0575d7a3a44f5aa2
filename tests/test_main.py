"""The CLI: every user mistake is one line on stderr, a non-zero exit, and no compile."""

import os
import subprocess
import sys

import pytest
from conftest import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(*args, devices: int = 1, timeout: int = 120):
  return subprocess.run([sys.executable, "-m", "cnn_jax.main", *args], cwd=ROOT,
                        env=subprocess_env(devices),
                        capture_output=True, text=True, timeout=timeout)


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
])
def test_bad_config_is_one_line(fashion_data_dir, tmp_path, override, expected):
  proc = run_main("--config=configs/fashion_mnist.py", f"--workdir={tmp_path}",
                  f"--config.data_dir={fashion_data_dir}", override)
  assert expected in error_line(proc)
  assert not os.path.exists(tmp_path / "checkpoints")


def test_batch_not_divisible_by_devices(fashion_data_dir, tmp_path):
  proc = run_main("--config=configs/fashion_mnist.py", f"--workdir={tmp_path}",
                  f"--config.data_dir={fashion_data_dir}", "--config.batch_size=12", devices=8)
  assert "batch_size=12 must be a positive multiple of the 8 devices" in error_line(proc)


def test_missing_config_file(tmp_path):
  proc = run_main("--config=configs/no_such_config.py", f"--workdir={tmp_path}")
  assert "cannot load the --config file" in error_line(proc)


def test_missing_dataset_says_how_to_get_it(tmp_path):
  proc = run_main("--config=configs/fashion_mnist.py", f"--workdir={tmp_path}",
                  f"--config.data_dir={tmp_path / 'empty'}",
                  f"--config.source_dir={tmp_path / 'nothing_here'}")
  line = error_line(proc)
  assert "apt-get install dataset-fashion-mnist" in line and "source_dir" in line


def test_corrupt_source_file_is_reported_not_built(tmp_path):
  src = tmp_path / "src"
  src.mkdir()
  for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
    (src / name).write_bytes(b"not gzip")
  proc = run_main("--config=configs/fashion_mnist.py", f"--workdir={tmp_path / 'wd'}",
                  f"--config.data_dir={tmp_path / 'tfds'}", f"--config.source_dir={src}")
  assert "cannot read" in error_line(proc)
  assert not os.path.exists(tmp_path / "tfds" / "fashion_mnist" / "3.0.1" / "dataset_info.json")


@pytest.mark.slow
def test_cli_trains_and_resumes(fashion_data_dir, tmp_path):
  args = ["--config=configs/fashion_mnist.py", f"--workdir={tmp_path}",
          f"--config.data_dir={fashion_data_dir}", "--config.num_train_steps=6",
          "--config.model_kwargs.width=4", "--config.batch_size=32",
          "--config.log_every_steps=3"]
  first = run_main(*args, timeout=300)
  assert first.returncode == 0, first.stderr[-3000:]
  assert "steps/s" in first.stderr and "ETA" in first.stderr
  assert (tmp_path / "results.json").exists()
  again = run_main(*args, timeout=300)
  assert again.returncode == 0 and "resumed at step 6" in again.stderr


def test_image_too_small_for_model():
  from configs import fashion_mnist
  from cnn_jax.main import UsageError, check_config
  config = fashion_mnist.get_config()
  config.model, config.model_kwargs = "alexnet", {}
  with pytest.raises(UsageError, match="image_size=28 is too small for alexnet"):
    check_config(config)
  config.model, config.image_size = "resnet18", 28  # the ImageNet stem still fits 28 px
  check_config(config)
