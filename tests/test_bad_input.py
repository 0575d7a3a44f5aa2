"""Bad input through the real command lines (`python -m cnn_jax.main`, `python -m
cnn_jax.convert`), one table: each case ends with exactly one `error:` line that names the
problem and the fix, a non-zero exit, no traceback, and nothing written or deleted (the
files the case reads and the workdir it names are compared before and after).

The config mistakes tests/test_main.py already runs through the CLI (unknown model,
dataset or field, log_every_steps=0, a misspelt weight-decay mode, ...) are not repeated.
"""

import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import QUICK_SHUFFLE, ROOT, run_cli, subprocess_env

MAIN = ("cnn_jax.main", "--config=configs/fashion_mnist.py", "--workdir={wd}",
        "--config.data_dir={data}")
CONVERT = ("cnn_jax.convert", "--model=resnet18", "--source=torchvision", "--out={wd}")

# (id, argv with {in}: the inputs folder, {data}: the TFDS data_dir, {wd}: a fresh path for
# the workdir or --out; the substrings the error line must hold: the problem, the fix).
CASES = [
    ("type_int", MAIN + ("--config.batch_size=abc",),
     ["--config.batch_size=abc", "invalid literal for int()"]),
    ("type_float_for_int", MAIN + ("--config.num_train_steps=1.5",),
     ["--config.num_train_steps=1.5"]),
    ("type_model_kwargs", MAIN + ("--config.model_kwargs.width=wide",),
     ["--config.model_kwargs.width=wide"]),
    ("type_float", MAIN + ("--config.learning_rate=fast",), ["--config.learning_rate=fast"]),
    ("batch_zero", MAIN + ("--config.batch_size=0",),
     ["batch_size=0 must be a positive multiple", "set --config.batch_size"]),
    ("batch_negative", MAIN + ("--config.batch_size=-32",),
     ["batch_size=-32 must be a positive multiple", "set --config.batch_size"]),
    ("eval_batch_zero", MAIN + ("--config.eval_batch_size=0",),
     ["eval_batch_size=0 must be", "set --config.eval_batch_size"]),
    ("learning_rate_negative", MAIN + ("--config.learning_rate=-0.1",),
     ["learning_rate=-0.1 must be a finite number >= 0", "--config.learning_rate"]),
    ("checkpoint_every_zero", MAIN + ("--config.checkpoint_every_steps=0",),
     ["checkpoint_every_steps=0 must be >= 1", "--config.checkpoint_every_steps"]),
    ("image_size_zero", MAIN + ("--config.image_size=0",),
     ["image_size=0 must be >= 1", "--config.image_size"]),
    # -5 used to mean "train num_epochs", -1 with num_epochs=-1 "exit 0 after -468 steps".
    ("steps_negative", MAIN + ("--config.num_train_steps=-5",),
     ["num_train_steps=-5 must be >= 0", "-1 to train num_epochs"]),
    ("epochs_negative", MAIN + ("--config.num_epochs=-1",),
     ["num_epochs=-1.0 must be > 0", "--config.num_epochs"]),
    ("dtype_unknown", MAIN + ("--config.dtype=float64",),
     ["unknown dtype 'float64'", "bfloat16, float16, float32"]),
    ("config_arg_unknown", ("cnn_jax.main", "--config=configs/vgg.py:vgg11,papr",
                            "--workdir={wd}"),
     ["unknown VGG config argument 'papr'", "choose a variant"]),
    ("config_arg_variant", ("cnn_jax.main", "--config=configs/resnet.py:resnet5",
                            "--workdir={wd}"),
     ["unknown ResNet config argument 'resnet5'", "resnet50"]),
    ("positional_argument", MAIN + ("train",),
     ["unexpected arguments ['train']", "--config.FIELD=VALUE"]),
    ("missing_data_folder", MAIN + ("--config.dataset=image_folder",
                                    "--config.source_dir={in}/no_such_folder"),
     ["no_such_folder' not found", "set --config.source_dir"]),
    ("image_folder_undecodable", MAIN[:3] + (
        "--config.dataset=image_folder", "--config.source_dir={in}/undecodable",
        "--config.data_dir={wd}_tfds"),
     ["undecodable/train: none of its 2 files is a decodable image", "put JPEG/PNG images"]),
    ("tfds_truncated", ("cnn_jax.main", "--config=configs/fashion_mnist.py", "--workdir={wd}",
                        "--config.data_dir={in}/tfds_truncated"),
     ["train split", "is damaged", "to build it again"]),
    ("workdir_is_a_file", ("cnn_jax.main", "--config=configs/fashion_mnist.py",
                           "--workdir={in}/a_file", "--config.data_dir={data}"),
     ["a_file is a file, not a directory", "choose another --workdir"]),
    ("workdir_parent_is_a_file", ("cnn_jax.main", "--config=configs/fashion_mnist.py",
                                  "--workdir={in}/a_file/run", "--config.data_dir={data}"),
     ["a_file is a file", "choose another --workdir"]),
    ("processes_without_coordinator", MAIN + ("--num_processes=2", "--process_id=0"),
     ["need --coordinator_address=HOST:PORT", "one-process run"]),
    ("process_id_out_of_range", MAIN + ("--num_processes=2", "--process_id=2",
                                        "--coordinator_address=localhost:1"),
     ["--process_id=2 must be in 0..1"]),
    # The first conv of an RGB checkpoint on 1-channel Fashion-MNIST: found before
    # compiling, by the checkpoint's shapes alone.
    ("init_from_rgb_on_grayscale", MAIN + ("--config.init_from={in}/rgb_resnet18",),
     ["expects 3 input channels", "the model gets 1", "3-channel images"]),
    ("init_from_unreadable", MAIN + ("--config.init_from={in}/broken_resnet18",),
     ["cannot read its variables", "python -m cnn_jax.convert"]),
    ("convert_weights_of_another_model", CONVERT + ("--weights={in}/alexnet.safetensors",),
     ["torchvision weights have no 'fc.weight'", "is this the model you named?"]),
    ("convert_truncated_safetensors", CONVERT + ("--weights={in}/truncated.safetensors",),
     ["truncated.safetensors is not a readable .safetensors file", "save it again"]),
    ("convert_pickled_code", CONVERT + ("--weights={in}/evil.pth",),
     ["evil.pth", "open, which a plain state dict never does", "refused without loading it"]),
    ("convert_out_is_a_file", ("cnn_jax.convert", "--model=resnet18", "--source=torchvision",
                               "--out={in}/a_file/converted",
                               "--weights={in}/resnet18.safetensors"),
     ["a_file is a file", "choose a new directory"]),
    ("convert_unknown_source", ("cnn_jax.convert", "--model=resnet18", "--source=torch",
                                "--out={wd}", "--weights={in}/resnet18.safetensors"),
     ["--source=torch", "torchvision|keras"]),
    pytest.param("convert_truncated_keras_h5",
                 ("cnn_jax.convert", "--model=resnet50", "--source=keras", "--out={wd}",
                  "--weights={in}/truncated.weights.h5"),
                 ["cannot be read as Keras weights", "is it whole"],
                 marks=pytest.mark.slow),  # builds Keras's ResNet-50 first (~15 s)
]


class _WritesAMarker:
  """Unpickling this runs `open(marker, 'w')`: a weight file carrying code."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def inputs(fashion_data_dir, tmp_path_factory):
  """The files the cases read: a plain file, weight files good and bad, converted
  checkpoints, a truncated copy of the prepared Fashion-MNIST."""
  from safetensors.numpy import save_file
  from test_convert import _write_pretrained
  d = tmp_path_factory.mktemp("inputs")
  (d / "a_file").write_text("not a directory")
  save_file({"features.0.weight": np.zeros((64, 3, 11, 11), np.float32)},
            str(d / "alexnet.safetensors"))
  save_file({"conv1.weight": np.zeros((64, 3, 7, 7), np.float32)},
            str(d / "resnet18.safetensors"))
  whole = (d / "resnet18.safetensors").read_bytes()
  (d / "truncated.safetensors").write_bytes(whole[:len(whole) // 2])
  (d / "truncated.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
  with open(d / "evil.pth", "wb") as f:
    pickle.dump({"conv1.weight": _WritesAMarker(str(d / "CODE_RAN"))}, f)
  # The quickstart's model (configs/fashion_mnist.py) with 3 input channels.
  overrides = {"width": 16, "stem": "small", "stage_sizes": [1, 1, 1, 1]}
  _write_pretrained(d / "rgb_resnet18", num_classes=10, overrides=overrides)
  shutil.copytree(d / "rgb_resnet18", d / "broken_resnet18")
  shutil.rmtree(d / "broken_resnet18" / "variables")
  os.makedirs(d / "broken_resnet18" / "variables")
  for split, cls in (("train", "a"), ("train", "b"), ("validation", "a")):
    os.makedirs(d / "undecodable" / split / cls)
    # A JPEG header and then garbage: what a truncated download or a renamed file holds.
    (d / "undecodable" / split / cls / "x.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(64))
  shutil.copytree(fashion_data_dir, d / "tfds_truncated")
  train = next((d / "tfds_truncated").rglob("fashion_mnist-train.tfrecord-*"))
  os.truncate(train, os.path.getsize(train) // 2)
  return d


def tree(path) -> dict:
  """Every file under `path` with its size and mtime (or {} if `path` does not exist)."""
  out = {}
  for root, dirs, files in os.walk(path):
    for name in dirs + files:
      p = os.path.join(root, name)
      st = os.stat(p)
      out[os.path.relpath(p, path)] = (st.st_size, st.st_mtime_ns)
  return out


def _cases():
  """CASES as parameters named by their first field (a pytest.param keeps its marks)."""
  for case in CASES:
    values, marks = getattr(case, "values", case), getattr(case, "marks", ())
    yield pytest.param(*values[1:], id=values[0], marks=marks)


def run_case(argv, capfd, subprocess_only=False):
  """cnn_jax.main's cases run in this process (conftest.run_cli); cnn_jax.convert's, whose
  flags would collide with cnn_jax.main's in one process, as a real `python -m`."""
  if argv[0] == "cnn_jax.main" and not subprocess_only:
    return run_cli(argv[0], argv[1:], capfd)
  return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, env=subprocess_env(),
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("argv,expected", list(_cases()))
def test_bad_input_is_one_line_and_changes_nothing(inputs, fashion_data_dir, tmp_path, capfd,
                                                   argv, expected):
  workdir = tmp_path / "out"
  args = [a.format(**{"in": inputs, "data": fashion_data_dir, "wd": workdir}) for a in argv]
  before = tree(inputs)
  proc = run_case(args, capfd)
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert proc.returncode not in (0, None) and len(errors) == 1, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  for part in expected:
    assert part in errors[0], errors[0]
  assert not workdir.exists()  # no workdir or --out made
  assert not (tmp_path / "out_tfds").exists()  # no dataset prepared
  assert tree(inputs) == before  # nothing read was written, moved or deleted
  assert not (inputs / "CODE_RAN").exists()  # the pickle's code never ran


@pytest.mark.parametrize("case", ["batch_zero", "config_arg_unknown"])
def test_exit_code_contract_through_a_real_process(fashion_data_dir, tmp_path, case):
  """What the in-process cases stand for: a real `python -m cnn_jax.main` exits 1 with the
  one error line on stderr, as the in-process run reports it."""
  argv, expected = next((c[1], c[2]) for c in CASES if getattr(c, "values", c)[0] == case)
  args = [a.format(**{"data": fashion_data_dir, "wd": tmp_path / "out"}) for a in argv]
  proc = run_case(args, None, subprocess_only=True)
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
  assert all(part in errors[0] for part in expected) and "Traceback" not in proc.stderr
  assert not (tmp_path / "out").exists()


# --- failures inside training: one line, the traceback behind --verbose -----------------

# `python -m cnn_jax.main` (in this process) with the training loop replaced by one that
# raises the case's exception: what a failure deep in training (after the config passed every
# check) prints. test_exit_code_contract_through_a_real_process stands for the real process.
FAILURES = [
    # A family config's ImageNet batch at 224 px on a CPU asked XLA for 181 GB.
    ("xla_out_of_memory",
     "jax.errors.JaxRuntimeError('RESOURCE_EXHAUSTED: Out of memory allocating "
     "181000000000 bytes.')",
     ["out of memory with batch_size=1536", "at image_size=224", "RESOURCE_EXHAUSTED",
      "lower --config.batch_size", "--config.image_size"]),
    ("input_pipeline_out_of_memory",
     "MemoryError('OOM when allocating tensor with shape[1536,224,224,3]')",
     ["out of memory with batch_size=1536", "lower --config.batch_size"]),
    ("restore_failure",
     "checkpoint.CheckpointError('none of the 2 checkpoints in /x/checkpoints (steps 20, "
     "10) can be restored; step 20: DATA_LOSS. Nothing was deleted; move them away')",
     ["none of the 2 checkpoints", "move them away"]),
    ("init_from_mismatch",
     "ValueError('init_from: params/stage1/conv/kernel is (3, 3, 16, 16) in the "
     "checkpoint, (3, 3, 8, 16) in the model; convert the weights of the model you train')",
     ["params/stage1/conv/kernel is (3, 3, 16, 16)", "convert the weights"]),
    ("write_failure",
     "PermissionError(13, 'Permission denied', '/x/checkpoints/20')",
     ["cannot read or write /x/checkpoints/20: Permission denied", "permissions of --workdir",
      "resumes from its newest complete checkpoint"]),
    ("unexpected", "RuntimeError('a bug\\nover two lines')",
     ["RuntimeError: a bug over two lines", "rerun with --verbose"]),
]


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
@pytest.mark.parametrize("raise_,expected", [pytest.param(*f[1:], id=f[0]) for f in FAILURES])
def test_failure_inside_training_is_one_line(fashion_data_dir, tmp_path, monkeypatch, capfd,
                                             raise_, expected, verbose):
  import jax
  from cnn_jax.train import checkpoint, loop

  def train_and_evaluate(config, workdir, source=""):
    raise eval(raise_, {"jax": jax, "checkpoint": checkpoint})  # noqa: S307 — the table's
  monkeypatch.setattr(loop, "train_and_evaluate", train_and_evaluate)
  proc = run_cli("cnn_jax.main", [
      "--config=configs/fashion_mnist.py", f"--workdir={tmp_path / 'run'}",
      f"--config.data_dir={fashion_data_dir}", "--config.batch_size=1536",
      "--config.image_size=224", *(["--verbose"] if verbose else [])], capfd)
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
  for part in expected:
    assert part in errors[0], errors[0]
  # The traceback shows with --verbose only, above the error line.
  assert ("Traceback (most recent call last)" in proc.stderr) == verbose, proc.stderr[-3000:]
  if verbose:
    assert proc.stderr.index("Traceback") < proc.stderr.index("error:")


@pytest.mark.slow
def test_a_real_out_of_memory_step_is_one_line(fashion_data_dir, tmp_path):
  """Not simulated: batch 512 at 448 px asks XLA:CPU for ~100 GB of activations in the
  first train step (measured: 108 GB; a 24 GB machine). The small shuffle buffer: filling
  the config's 60,000 took half of this test's 16 s."""
  workdir = tmp_path / "run"
  proc = subprocess.run(
      [sys.executable, "-m", "cnn_jax.main", "--config=configs/fashion_mnist.py",
       f"--workdir={workdir}", f"--config.data_dir={fashion_data_dir}",
       "--config.batch_size=512", "--config.image_size=448", "--config.num_train_steps=2",
       QUICK_SHUFFLE],
      cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  for part in ("out of memory with batch_size=512", "at image_size=448",
               "RESOURCE_EXHAUSTED: Out of memory allocating", "lower --config.batch_size"):
    assert part in errors[0], errors[0]
  ckpts = workdir / "checkpoints"
  assert not ckpts.exists() or not [d for d in os.listdir(ckpts) if d.isdigit()]


def test_convert_verbose_shows_the_traceback(inputs, tmp_path):
  args = [sys.executable, "-m", "cnn_jax.convert", "--model=resnet18",
          "--source=torchvision", f"--out={tmp_path / 'out'}",
          f"--weights={inputs / 'truncated.safetensors'}"]
  plain = subprocess.run(args, cwd=ROOT, env=subprocess_env(), capture_output=True,
                         text=True, timeout=300)
  verbose = subprocess.run(args + ["--verbose"], cwd=ROOT, env=subprocess_env(),
                           capture_output=True, text=True, timeout=300)
  assert "Traceback" not in plain.stderr and "SafetensorError" in verbose.stderr
  assert "Traceback (most recent call last)" in verbose.stderr
  for proc in (plain, verbose):
    assert proc.returncode == 1
    assert [l for l in proc.stderr.splitlines() if l.startswith("error:")] == [
        l for l in plain.stderr.splitlines() if l.startswith("error:")]
