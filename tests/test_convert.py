"""Converted checkpoints: `python -m cnn_jax.convert` writes one, `config.init_from` loads
it into the trainer (evaluate with 0 steps, or fine-tune with another class count), and
every misuse is one line."""

import json
import os

import numpy as np
import pytest

from conftest import run_cli
from tests.test_data_imagenet import jpeg_bytes, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = {"width": 16, "stem": "small", "stage_sizes": [1, 1, 1, 1]}  # configs/fashion_mnist.py


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
  """A 2-class RGB image folder (train/ and val/), the user's-own-data dataset."""
  src = tmp_path_factory.mktemp("folder")
  rng = np.random.default_rng(0)
  for split, n in (("train", 4), ("val", 3)):
    for cls in ("cat", "dog"):
      (src / split / cls).mkdir(parents=True)
      for k in range(n):
        (src / split / cls / f"{k}.jpg").write_bytes(jpeg_bytes(rng, 40, 50))
  return str(src)


def _write_pretrained(path, num_classes, model="resnet18", overrides=SMALL, seed=0):
  import functools

  import jax
  import jax.numpy as jnp

  from cnn_jax import models
  from cnn_jax.train import checkpoint
  net = models.create(model, num_classes=num_classes, **overrides)
  variables = jax.jit(functools.partial(net.init, train=False))(
      jax.random.key(seed), jnp.zeros((1, 32, 32, 3)))
  meta = {"model": model, "source": "test", "num_classes": num_classes,
          "overrides": overrides, "mean": [0.5] * 3, "std": [0.25] * 3}
  checkpoint.save_pretrained(str(path), variables, meta)
  return variables


def _main(capfd, workdir, folder, *extra):
  """`python -m cnn_jax.main` on the image folder, run in this process (conftest.run_cli):
  its errors come back on stderr, its log in caplog."""
  return run_cli("cnn_jax.main", [
      "--config=configs/fashion_mnist.py", f"--workdir={workdir}",
      "--config.dataset=image_folder", f"--config.source_dir={folder}",
      f"--config.data_dir={workdir}/tfds", "--config.image_size=32", "--config.batch_size=2",
      "--config.eval_batch_size=4", "--config.augment=none", "--config.model=resnet18",
      "--config.shuffle_buffer=8", *extra], capfd)


def test_init_from_evaluates_the_loaded_weights(image_folder, tmp_path, capfd):
  from cnn_jax.train.metrics import params_fingerprint
  variables = _write_pretrained(tmp_path / "pre", num_classes=2)
  proc = _main(capfd, tmp_path / "w", image_folder, f"--config.init_from={tmp_path}/pre",
               "--config.num_train_steps=0")
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(tmp_path / "w" / "results.json") as f:
    results = json.load(f)
  assert results["steps"] == 0 and results["eval_examples"] == 6
  assert results["params_fingerprint"] == params_fingerprint(variables["params"])
  with open(tmp_path / "w" / "config.json") as f:  # the run records where it started
    assert json.load(f)["init_from"] == f"{tmp_path}/pre"


def test_init_from_fine_tunes_with_another_class_count(image_folder, tmp_path, capfd, caplog):
  _write_pretrained(tmp_path / "pre", num_classes=5)
  proc = _main(capfd, tmp_path / "w", image_folder, f"--config.init_from={tmp_path}/pre",
               "--config.num_train_steps=2", "--config.log_every_steps=1")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "head/fc/kernel" in caplog.text and "class count differs" in caplog.text


@pytest.mark.parametrize("extra,expected", [
    (("--config.model=resnet34",), "holds resnet18, not resnet34; set --config.model=resnet18"),
    (("--config.model_kwargs.width=8",), "model_kwargs.width=8 contradicts"),
])
def test_init_from_mismatch_is_one_line(image_folder, tmp_path, capfd, extra, expected):
  _write_pretrained(tmp_path / "pre", num_classes=2)
  proc = _main(capfd, tmp_path / "w", image_folder, f"--config.init_from={tmp_path}/pre",
               "--config.num_train_steps=0", *extra)
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert proc.returncode != 0 and len(errors) == 1, proc.stderr[-2000:]
  assert expected in errors[0]


def test_init_from_not_a_converted_checkpoint(image_folder, tmp_path, capfd):
  proc = _main(capfd, tmp_path / "w", image_folder, f"--config.init_from={tmp_path}")
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert proc.returncode != 0 and len(errors) == 1, proc.stderr[-2000:]
  assert "is not a converted checkpoint" in errors[0] and "cnn_jax.convert" in errors[0]


def test_save_pretrained_refuses_a_non_empty_directory(tmp_path):
  from cnn_jax.train import checkpoint
  (tmp_path / "keep.txt").write_text("precious")
  with pytest.raises(FileExistsError, match="not empty"):
    checkpoint.save_pretrained(str(tmp_path), {"params": {}}, {})
  assert (tmp_path / "keep.txt").read_text() == "precious"


def _convert(*args):
  return run("cnn_jax.convert", *args, timeout=600)


@pytest.mark.slow
def test_keras_weights_file_converts_and_evaluates_through_main(image_folder, tmp_path,
                                                               capfd):
  """A Keras .weights.h5 -> `python -m cnn_jax.convert --verify` (a real process) ->
  orbax checkpoint -> `cnn_jax.main --config.init_from=... --config.num_train_steps=0`
  (in this process), which must build the model with the checkpoint's overrides and
  evaluate exactly the converted weights.

  Keras MobileNet (v1), the cheapest Keras application to build, convert, run eagerly
  (--verify) and compile: the steps are the same for every model, and each family's
  mapping has its own tests (tests/test_convert_*.py). With Keras ResNet-50 this took
  26-39 s on 2 cores."""
  from cnn_jax import convert
  from cnn_jax.train.metrics import params_fingerprint
  from convert_testing import keras_model
  source = keras_model("MobileNet", classes=2, input_shape=(32, 32, 3))
  source.save_weights(str(tmp_path / "mobilenet.weights.h5"))
  out = tmp_path / "converted"
  proc = _convert("--model=mobilenet_v1", "--source=keras",
                  f"--weights={tmp_path}/mobilenet.weights.h5", "--num_classes=2",
                  "--input_size=32", f"--out={out}", "--verify")
  assert proc.returncode == 0, proc.stderr[-3000:]
  diff = float(proc.stdout.split("max |logit difference| ")[1].split()[0])
  assert diff <= 1e-4, proc.stdout
  with open(out / "cnn_jax_pretrained.json") as f:
    meta = json.load(f)
  expected = convert.convert("keras", "mobilenet_v1", source)  # the same weights, here
  assert meta["overrides"] == expected.overrides and meta["num_classes"] == 2
  assert meta["overrides"]["padding"] == "SAME" and meta["overrides"]["act"] == "relu6"
  main = run_cli("cnn_jax.main", [
      "--config=configs/default.py", "--config.model=mobilenet_v1", f"--workdir={tmp_path}/w",
      "--config.dataset=image_folder", f"--config.source_dir={image_folder}",
      f"--config.data_dir={tmp_path}/tfds", "--config.image_size=32", "--config.batch_size=2",
      "--config.eval_batch_size=4", f"--config.init_from={out}",
      "--config.num_train_steps=0"], capfd)
  assert main.returncode == 0, main.stderr[-3000:]
  with open(tmp_path / "w" / "results.json") as f:
    results = json.load(f)
  assert results["eval_examples"] == 6 and results["steps"] == 0
  assert results["model_kwargs"] == meta["overrides"]
  assert results["params_fingerprint"] == params_fingerprint(expected.variables["params"])


def test_convert_cli_errors_are_one_line(tmp_path):
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "x").write_text("keep")
  cases = [
      (("--model=resnet5", "--source=keras", "--weights=w.h5", f"--out={tmp_path}/o"),
       "unknown model 'resnet5'"),
      (("--model=zfnet", "--source=torchvision", "--weights=w.pth", f"--out={tmp_path}/o"),
       "no torchvision converter for 'zfnet'"),
      (("--model=resnet18", "--source=torchvision", "--weights=missing.pth",
        f"--out={tmp_path}/o"), "missing.pth does not exist"),
      (("--model=resnet18", "--source=torchvision", "--weights=w.pth",
        f"--out={tmp_path}/out"), "is not empty"),
  ]
  for args, expected in cases:
    proc = _convert(*args)
    errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 1, proc.stderr[-2000:]
    assert expected in errors[0], errors[0]
  assert (tmp_path / "out" / "x").read_text() == "keep"
