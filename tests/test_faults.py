"""Faults a user meets in real runs, each with what the trainer must do about it.

A finished run rerun (results kept), a workdir holding another config's run (refused before
anything is written), a corrupt newest checkpoint (the previous one restores), SIGTERM
(exit 75, the rerun resumes to the same parameters), divergence (stopped before anything
non-finite is saved), an eval batch larger than the split (shrunk). The CLI's one-line
config errors are in tests/test_main.py.
"""

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import QUICK_SHUFFLE, ROOT, subprocess_env, tiny_fashion_config

from cnn_jax.cli import UsageError
from cnn_jax.train import checkpoint
from cnn_jax.train.loop import train_and_evaluate

# Two kept checkpoints (steps 10 and 20); a cosine schedule; a quick evaluation.
RUN = dict(num_train_steps=20, checkpoint_every_steps=10, keep_checkpoints=2, batch_size=32,
           log_every_steps=10, eval_max_examples=500, eval_batch_size=500)


def run_config(data_dir, **changes):
  return tiny_fashion_config(data_dir, **{**RUN, **changes})


@pytest.fixture(scope="module")
def finished_run(fashion_data_dir, tmp_path_factory):
  """A finished 20-step run (checkpoints 10 and 20, results.json); tests copy it."""
  workdir = tmp_path_factory.mktemp("finished")
  results = train_and_evaluate(run_config(fashion_data_dir), str(workdir))
  return workdir, results


def copy_run(finished_run, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished_run[0], workdir)
  return workdir


def snapshot(workdir) -> dict:
  """Every file's bytes and mtime under `workdir`."""
  out = {}
  for root, _, files in os.walk(workdir):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, workdir)] = (f.read(), os.stat(path).st_mtime_ns)
  return out


def earlier_run(workdir, config, results=None):
  """A workdir as an earlier run of `config` left it: its config.json (and results.json)."""
  os.makedirs(workdir, exist_ok=True)
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True))
  if results is not None:
    (workdir / "results.json").write_text(json.dumps(results))


# --- a finished run rerun -----------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.xdist_group("finished_run")
def test_rerunning_a_finished_run_keeps_its_results(finished_run, fashion_data_dir, tmp_path,
                                                    caplog):
  workdir = copy_run(finished_run, tmp_path)
  before = snapshot(workdir)
  caplog.set_level(logging.INFO)
  again = train_and_evaluate(run_config(fashion_data_dir), str(workdir))
  assert again == finished_run[1]  # wall_seconds, images/s: the training run's, not 0.0
  assert again["train_images_per_second"] > 0
  assert snapshot(workdir) == before  # results.json, history.jsonl, config.json untouched
  assert "holds a finished run of 20 steps" in caplog.text


# --- a workdir holding another run ----------------------------------------------------------

@pytest.mark.parametrize("changes,listed", [
    ({"model_kwargs": {"stem": "small", "width": 4}}, "model_kwargs.width: 8 -> 4"),
    ({"optimizer": "adam"}, 'optimizer: "nesterov" -> "adam"'),
    ({"image_size": 32}, "image_size: 28 -> 32"),
    ({"dataset": "image_folder"}, 'dataset: "fashion_mnist" -> "image_folder"'),
])
def test_workdir_of_another_config_is_refused_untouched(fashion_data_dir, tmp_path, changes,
                                                        listed):
  workdir = tmp_path / "run"
  earlier_run(workdir, run_config(fashion_data_dir))
  before = snapshot(workdir)
  with pytest.raises(UsageError) as e:
    train_and_evaluate(run_config(fashion_data_dir, **changes), str(workdir))
  message = str(e.value)
  assert "holds a run of another config" in message and listed in message
  assert "choose another --workdir" in message and "\n" not in message
  assert snapshot(workdir) == before  # config.json is not replaced, nothing is written


@pytest.mark.slow
@pytest.mark.xdist_group("finished_run")
def test_workdir_with_other_settings_warns_and_resumes(finished_run, fashion_data_dir,
                                                       tmp_path, caplog):
  workdir = copy_run(finished_run, tmp_path)
  caplog.set_level(logging.INFO)
  # Training further with another logging interval: allowed, and said.
  results = train_and_evaluate(run_config(fashion_data_dir, num_train_steps=30,
                                          log_every_steps=5), str(workdir))
  assert results["steps"] == 30
  assert "log_every_steps: 10 -> 5" in caplog.text and "num_train_steps: 20 -> 30" in caplog.text
  assert "resumed at step 20" in caplog.text
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["num_train_steps"] == 30  # the check passed: the new config is recorded


# --- a corrupt newest checkpoint ------------------------------------------------------------

def corrupt(step_dir) -> None:
  """Truncates the step's largest file (its array data) to half: a disk that filled up."""
  files = [os.path.join(r, f) for r, _, fs in os.walk(step_dir) for f in fs]
  largest = max(files, key=os.path.getsize)
  with open(largest, "r+b") as f:
    f.truncate(os.path.getsize(largest) // 2)


@pytest.mark.slow
@pytest.mark.xdist_group("finished_run")
def test_corrupt_newest_checkpoint_falls_back_to_the_previous(finished_run, fashion_data_dir,
                                                              tmp_path, caplog):
  workdir = copy_run(finished_run, tmp_path)
  os.remove(workdir / "results.json")
  corrupt(workdir / "checkpoints" / "20")
  caplog.set_level(logging.INFO)
  results = train_and_evaluate(run_config(fashion_data_dir), str(workdir))
  assert re.search(r"checkpoint step 20 in \S+ cannot be restored", caplog.text)
  assert "resumed at step 10" in caplog.text
  # Steps 11..20 trained again from step 10: the uninterrupted run's parameters.
  assert results["params_fingerprint"] == finished_run[1]["params_fingerprint"]
  assert os.path.isdir(workdir / "checkpoints_corrupt" / "20")  # set aside, not deleted
  assert sorted(os.listdir(workdir / "checkpoints")) == ["10", "20"]


@pytest.mark.slow
@pytest.mark.xdist_group("finished_run")
def test_all_checkpoints_corrupt_is_one_line_and_deletes_nothing(finished_run,
                                                                 fashion_data_dir, tmp_path):
  workdir = copy_run(finished_run, tmp_path)
  os.remove(workdir / "results.json")
  for step in ("10", "20"):
    corrupt(workdir / "checkpoints" / step)
  with pytest.raises(checkpoint.CheckpointError) as e:
    train_and_evaluate(run_config(fashion_data_dir), str(workdir))
  message = str(e.value)
  assert "none of the 2 checkpoints" in message and "Nothing was deleted" in message
  assert "\n" not in message
  assert sorted(os.listdir(workdir / "checkpoints")) == ["10", "20"]
  assert not (workdir / "results.json").exists()
  assert not (workdir / "checkpoints_corrupt").exists()


def test_best_checkpoint_of_a_step_already_kept_is_not_saved_again(tmp_path):
  """A sweep run killed after evaluating step 21 (best-checkpoint manager: 21, and 24 whose
  deletion the kill interrupted) resumes from step 20 and evaluates step 21 again: the
  offer of step 21 must not raise orbax's StepAlreadyExistsError (seen in
  test_killed_run_resumes_from_its_checkpoint)."""
  import jax.numpy as jnp
  import optax
  import orbax.checkpoint as ocp
  from flax.training import train_state

  def state(step):
    return train_state.TrainState.create(apply_fn=None, params={"w": jnp.ones(2)},
                                         tx=optax.sgd(0.1)).replace(step=step)
  left = ocp.CheckpointManager(
      tmp_path / "checkpoints_best",
      options=ocp.CheckpointManagerOptions(create=True, best_fn=lambda m: m["top1"],
                                           best_mode="max"))
  for step, top1 in ((21, 0.3), (24, 0.5)):
    left.save(step, args=ocp.args.StandardSave(state(step)), metrics={"top1": top1})
  left.wait_until_finished()
  left.close()
  mngr = checkpoint.best_manager(str(tmp_path))
  assert mngr.all_steps() == [21, 24] and mngr.latest_step() == 24
  checkpoint.save_if_best(mngr, state(21), {"top1": 0.3})
  checkpoint.save_if_best(mngr, state(27), {"top1": 0.9})
  mngr.wait_until_finished()
  assert mngr.all_steps()[-1] == 27
  mngr.close()


# --- the eval batch and the split -----------------------------------------------------------

def test_eval_batch_never_exceeds_the_split(fashion_data_dir, caplog):
  from cnn_jax import data, models
  caplog.set_level(logging.INFO)
  config = tiny_fashion_config(fashion_data_dir, eval_batch_size=16_000)
  inp = data.create_input(config, model_spec=models.spec(config.model))
  assert inp.eval.local_batch_size == 10_000 and inp.eval.num_batches == 1
  assert "eval batch 10000 instead of eval_batch_size=16000" in caplog.text


# --- through the command line: divergence, SIGTERM ------------------------------------------

def main_args(data_dir, workdir, *extra):
  return [sys.executable, "-m", "cnn_jax.main", "--config=configs/fashion_mnist.py",
          f"--workdir={workdir}", f"--config.data_dir={data_dir}",
          "--config.model_kwargs.width=4", "--config.batch_size=32",
          "--config.eval_max_examples=500", "--config.eval_batch_size=500", QUICK_SHUFFLE,
          *extra]


def checkpoint_steps(workdir) -> list[int]:
  path = os.path.join(workdir, "checkpoints")
  return sorted(int(d) for d in os.listdir(path) if d.isdigit()) if os.path.isdir(path) else []


@pytest.mark.slow
def test_divergence_stops_before_saving_non_finite_values(fashion_data_dir, tmp_path):
  # A rate of 1e30 puts ~1e30 in the weights after one step: the next forward pass
  # overflows (BatchNorm's variance of ~1e30 activations), whatever the initialisation.
  proc = subprocess.run(
      main_args(fashion_data_dir, tmp_path, "--config.learning_rate=1e30",
                "--config.warmup_epochs=0", "--config.num_train_steps=10",
                "--config.checkpoint_every_steps=1", "--config.log_every_steps=5"),
      cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  m = re.search(r"training diverged: .* (?:at|after) step (\d+)", errors[0])
  assert m and "--config.learning_rate" in errors[0], errors[0]
  bad_step = int(m.group(1))
  assert all(s < bad_step for s in checkpoint_steps(tmp_path))
  assert not (tmp_path / "results.json").exists()


# The reference for the SIGTERM and SIGKILL chain: 60 steps, checkpoints every 20 (3 kept).
KILL_RUN = ("--config.num_train_steps=60", "--config.log_every_steps=10",
            "--config.checkpoint_every_steps=20", "--config.keep_checkpoints=3",
            "--config.warmup_epochs=0.02")


@pytest.fixture(scope="module")
def uninterrupted(fashion_data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  proc = subprocess.run(main_args(fashion_data_dir, workdir, *KILL_RUN), cwd=ROOT,
                        env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads((workdir / "results.json").read_text())


def test_sigterm_handler_is_restored_after_training(fashion_data_dir, tmp_path):
  previous = signal.getsignal(signal.SIGTERM)
  marker = lambda signum, frame: None  # noqa: E731
  signal.signal(signal.SIGTERM, marker)
  try:
    workdir = tmp_path / "run"
    earlier_run(workdir, run_config(fashion_data_dir), results={"steps": 20, "top1": 0.5})
    # A finished run (returns early), then a refused one (raises).
    assert train_and_evaluate(run_config(fashion_data_dir), str(workdir))["top1"] == 0.5
    assert signal.getsignal(signal.SIGTERM) is marker
    with pytest.raises(UsageError):
      train_and_evaluate(run_config(fashion_data_dir, optimizer="adam"), str(workdir))
    assert signal.getsignal(signal.SIGTERM) is marker
  finally:
    signal.signal(signal.SIGTERM, previous)


# --- eval masking ---------------------------------------------------------------------------

def test_padded_last_eval_batch_counts_exactly_the_split(fashion_data_dir):
  """500 examples in batches of 96 (5 full + 20 real and 76 padding) give the count, top-1
  and loss of one unpadded batch of 500: the padding's mask keeps it out of every sum."""
  import numpy as np

  from cnn_jax import data, models, parallel
  from cnn_jax.train import loop
  from cnn_jax.train.steps import jit_eval

  results = {}
  for eval_batch in (500, 96):
    config = run_config(fashion_data_dir, eval_max_examples=500, eval_batch_size=eval_batch)
    inp = data.create_input(config, model_spec=models.spec(config.model))
    mesh = parallel.make_mesh()
    model = loop.create_model(config, inp.info.num_classes)
    state, shardings, _ = loop.create_train_state(
        config, model, mesh, (28, 28, 1), inp.train.num_batches, 20)
    eval_fn = jit_eval(model.apply, inp.info.num_classes, shardings,
                       parallel.batch_sharding(mesh), parallel.replicated(mesh))
    batches = list(inp.eval_iter())
    masks = np.concatenate([b["mask"] for b in batches])
    results[eval_batch] = (loop.evaluate(eval_fn, state, batches, mesh), masks)
  (whole, whole_mask), (padded, padded_mask) = results[500], results[96]
  assert len(whole_mask) == 500 and len(padded_mask) == 576  # the padding is there
  assert padded_mask.sum() == whole_mask.sum() == 500
  assert padded["count"] == whole["count"] == 500
  assert padded["top1"] == whole["top1"] and padded["top5"] == whole["top5"]
  # Summed in other groups: float32 rounding only (an unmasked padding of 76 label-0
  # zero images would move the mean loss by percents).
  assert padded["loss"] == pytest.approx(whole["loss"], rel=1e-6, abs=0)


# --- a checkpoint write failure -------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.xdist_group("finished_run")
def test_write_failure_is_one_line_and_keeps_the_previous_checkpoint(
    finished_run, fashion_data_dir, tmp_path, monkeypatch, caplog):
  """The save of step 20 fails as a full (or, for a non-root user, read-only) disk would:
  chmod cannot make a directory read-only for root, so checkpoint.save raises instead. The
  run stops with one line naming the path and the fix; step 10 stays whole and the rerun
  from it ends with the uninterrupted run's parameters."""
  import errno

  import jax

  from cnn_jax.main import failure_line
  workdir = tmp_path / "run"
  real_save = checkpoint.save

  def save(mngr, state, force=False):
    if int(jax.device_get(state.step)) > 10:
      raise OSError(errno.ENOSPC, "No space left on device",
                    os.path.join(str(mngr.directory), "20"))
    real_save(mngr, state, force=force)

  monkeypatch.setattr(checkpoint, "save", save)
  config = run_config(fashion_data_dir)
  with pytest.raises(OSError) as e:
    train_and_evaluate(config, str(workdir))
  line = failure_line(e.value, config, str(workdir))
  assert "No space left on device" in line and "checkpoints/20" in line, line
  assert f"--workdir={workdir}" in line and "\n" not in line
  assert checkpoint_steps(workdir) == [10] and not (workdir / "results.json").exists()

  monkeypatch.setattr(checkpoint, "save", real_save)
  caplog.set_level(logging.INFO)
  results = train_and_evaluate(config, str(workdir))
  assert "resumed at step 10" in caplog.text
  assert results["params_fingerprint"] == finished_run[1]["params_fingerprint"]


# --- SIGKILL at three points and SIGTERM, in one workdir --------------------------------------

def _saving(workdir) -> bool:
  """An asynchronous save in flight: orbax writes `<step>.orbax-checkpoint-tmp-*` and
  renames it when committed."""
  path = os.path.join(workdir, "checkpoints")
  return os.path.isdir(path) and any("tmp" in d for d in os.listdir(path))


def _start(data_dir, workdir):
  return subprocess.Popen(main_args(data_dir, workdir, *KILL_RUN), cwd=ROOT,
                          env=subprocess_env(), stderr=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, text=True)


def _read_until(proc, pattern) -> str:
  """The process's log up to the first line matching `pattern` (at most 240 s)."""
  lines, deadline = [], time.monotonic() + 240
  for line in proc.stderr:
    lines.append(line)
    if re.search(pattern, line) or time.monotonic() > deadline:
      break
  return "".join(lines)


def _kill(proc) -> None:
  proc.kill()
  proc.wait(timeout=60)


@pytest.mark.slow
def test_kills_and_sigterm_then_the_last_rerun_matches_an_uninterrupted_run(
    uninterrupted, fashion_data_dir, tmp_path):
  """One workdir through four interruptions, each run starting where the previous one
  left it: SIGKILL before the first checkpoint (nothing saved: the next run starts
  afresh), SIGKILL between checkpoints (step 20 committed), SIGTERM (exit 75 with a
  checkpoint of the step it stopped at), SIGKILL while an asynchronous save is in flight
  (the half-written step is not used). The run that finishes must end with the
  uninterrupted run's parameters, loss and BatchNorm statistics, which any leg restoring
  or continuing wrongly (the warm-up then cosine schedule included) would change. One
  chain of 5 processes instead of 4 tests of 2 (~12 s of imports and compiling each)."""
  workdir = tmp_path / "run"
  procs = []
  try:
    # 1. SIGKILL at the log line of step 10: no checkpoint yet.
    procs.append(proc := _start(fashion_data_dir, workdir))
    _read_until(proc, r"step 10/60 \|")
    _kill(proc)
    assert checkpoint_steps(workdir) == []

    # 2. Starts afresh; SIGKILL at step 30's log line, step 20 committed.
    procs.append(proc := _start(fashion_data_dir, workdir))
    log = _read_until(proc, r"step 30/60 \|")
    _kill(proc)
    assert "resumed at step" not in log and "step 30/60 |" in log, log[-3000:]
    assert checkpoint_steps(workdir) == [20]

    # 3. Resumes at 20; SIGTERM at its first log line: exit 75, a checkpoint of the step it
    # stopped at (the newest: a slow reaction may pass a scheduled one), no results.
    procs.append(proc := _start(fashion_data_dir, workdir))
    log = _read_until(proc, r"step \d+/60 \|")
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=120)
    log += rest
    assert proc.returncode == 75 and "resumed at step 20" in log, log[-3000:]
    stopped = int(re.search(r"stopped at step (\d+) after SIGTERM", log).group(1))
    assert 20 < stopped < 60 and checkpoint_steps(workdir)[-1] == stopped

    # 4. Resumes at the stop; SIGKILL while its next save is being written.
    procs.append(proc := _start(fashion_data_dir, workdir))
    deadline = time.monotonic() + 240
    while not _saving(workdir) and proc.poll() is None and time.monotonic() < deadline:
      time.sleep(0.001)
    assert _saving(workdir), "no asynchronous save was seen in flight"
    _kill(proc)
    killed_at = checkpoint_steps(workdir)
    assert not (workdir / "results.json").exists()
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()

  # 5. Resumes at the newest committed step and finishes.
  rerun = subprocess.run(main_args(fashion_data_dir, workdir, *KILL_RUN), cwd=ROOT,
                         env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert f"resumed at step {killed_at[-1]}" in rerun.stderr
  out = json.loads((workdir / "results.json").read_text())
  assert out["steps"] == uninterrupted["steps"] == 60
  assert out["params_fingerprint"] == uninterrupted["params_fingerprint"]
  assert out["loss"] == uninterrupted["loss"]  # BatchNorm statistics restored too
