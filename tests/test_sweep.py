"""The sweep runner (cnn_jax.sweep): the verdict rule on hand-made numbers, experiment
files checked before anything trains, and a tiny study end to end (folders, report,
skip of finished runs, resume of a killed run)."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import QUICK_SHUFFLE, ROOT, SHUFFLE_BUFFER, run_cli, subprocess_env

from cnn_jax.sweep import index, verdict
from cnn_jax.sweep.verdict import Claim, judge


def claim(expect, margin=0.0):
  return Claim(metric="test_error", variant="v", baseline="b", expect=expect, margin=margin)


# Errors per seed; lower is better, so the variant "improves" when its error is lower.
@pytest.mark.parametrize("expect,margin,variant,baseline,outcome", [
    ("better", 0.0, [0.10, 0.11, 0.12], [0.20, 0.21, 0.22], verdict.REPRODUCED),
    ("better", 0.0, [0.20, 0.21, 0.22], [0.10, 0.11, 0.12], verdict.NOT_REPRODUCED),
    ("better", 0.0, [0.10, 0.20, 0.15], [0.12, 0.18, 0.16], verdict.INCONCLUSIVE),
    # better by more than a margin of 0.2: a clear 0.1 improvement is not enough
    ("better", 0.2, [0.10, 0.11, 0.12], [0.20, 0.21, 0.22], verdict.NOT_REPRODUCED),
    ("worse", 0.0, [0.20, 0.21, 0.22], [0.10, 0.11, 0.12], verdict.REPRODUCED),
    ("worse", 0.0, [0.10, 0.11, 0.12], [0.20, 0.21, 0.22], verdict.NOT_REPRODUCED),
    # no gain within 0.01: equal means, tight spread
    ("no_gain", 0.01, [0.150, 0.151, 0.149], [0.150, 0.149, 0.151], verdict.REPRODUCED),
    # a worse variant has no gain either
    ("no_gain", 0.01, [0.30, 0.31, 0.29], [0.10, 0.11, 0.09], verdict.REPRODUCED),
    ("no_gain", 0.01, [0.10, 0.11, 0.09], [0.30, 0.31, 0.29], verdict.NOT_REPRODUCED),
    ("no_gain", 0.01, [0.10, 0.20, 0.15], [0.12, 0.18, 0.16], verdict.INCONCLUSIVE),
])
def test_verdict_rule(expect, margin, variant, baseline, outcome):
  assert judge(claim(expect, margin), variant, baseline).verdict == outcome


def test_verdict_arithmetic_and_single_seed():
  out = judge(claim("better"), [0.1, 0.3], [0.4, 0.6])
  # improvement 0.5 - 0.2 = 0.3; se = sqrt(0.02/2 + 0.02/2) = 0.1414; 2 se = 0.2828
  assert out.improvement == pytest.approx(0.3)
  assert out.half_width == pytest.approx(2 * (0.02) ** 0.5)
  assert out.verdict == verdict.REPRODUCED
  assert judge(claim("better"), [0.1], [0.9]).verdict == verdict.INCONCLUSIVE
  higher_better = judge(claim("better"), [0.9, 0.91], [0.5, 0.51], lower_is_better=False)
  assert higher_better.improvement == pytest.approx(0.4)
  assert verdict.overall([]) is None
  assert verdict.overall([out]) == verdict.REPRODUCED
  assert verdict.overall([out, judge(claim("better"), [0.9, 0.91], [0.1, 0.11])]) == \
      verdict.NOT_REPRODUCED
  with pytest.raises(ValueError, match="expect='faster'"):
    Claim(metric="test_error", variant="v", baseline="b", expect="faster")


def test_steps_to_threshold_metric():
  from cnn_jax.sweep import metrics
  run = {"results": {"steps": 30, "top1": 0.5},
         "history": [{"kind": "train", "step": 10, "top1": 0.6},
                     {"kind": "train", "step": 20, "top1": 0.8},
                     {"kind": "eval", "step": 20, "top1": 0.7},
                     {"kind": "train", "step": 30, "top1": 0.9}]}
  assert metrics.known("steps_to_train_error@0.25") and metrics.lower_is_better(
      "steps_to_train_error@0.25")
  assert metrics.value("steps_to_train_error@0.25", run) == 20
  assert metrics.value("steps_to_test_error@0.35", run) == 20
  assert metrics.value("steps_to_train_error@0.05", run) == 30  # never: the last step
  assert not metrics.known("steps_to_train_error@2") and not metrics.known("speed")
  assert metrics.value("test_error", run) == pytest.approx(0.5)
  assert metrics.value("train_error", run) != metrics.value("train_error", run)  # nan


TINY = '''"""A tiny study: width 4 vs width 8 (the sweep tests' own experiment file)."""
from configs import fashion_mnist


def get_config(arg=None):
  c = fashion_mnist.get_config()
  c.model_kwargs = {"stem": "small", "stage_sizes": (1, 1)}
  c.batch_size = 32
  c.num_train_steps = STEPS
  c.log_every_steps = 3
  c.checkpoint_every_steps = CKPT
  c.eval_every_epochs = 3 / 1875
  c.eval_max_examples = 64
  c.eval_batch_size = 64
  c.warmup_epochs = 0.0
  c.shuffle_buffer = SHUFFLE_BUFFER
  return c


def get_sweep(arg=None):
  return CELLS


def get_claims(arg=None):
  return [{"metric": "test_error", "variant": "wide", "baseline": "narrow",
           "expect": "better", "text": "wider is better"}]
'''
CELLS = [{"name": "narrow", "model_kwargs.width": 2}, {"name": "wide", "model_kwargs.width": 4}]


def write_experiment(path, cells=CELLS, steps=6, ckpt=3, extra=""):
  path.write_text(TINY.replace("STEPS", str(steps)).replace("CKPT", str(ckpt))
                  .replace("SHUFFLE_BUFFER", str(SHUFFLE_BUFFER))
                  .replace("CELLS", repr(cells)) + extra)
  return str(path)


def sweep(*args, timeout=600, wait=True):
  """`python -m cnn_jax.sweep *args` as a real process (the end-to-end and killed-run
  tests); `sweep_here` runs the other cases in this process (conftest.run_cli: no imports
  to pay per case; the log goes to caplog)."""
  cmd = [sys.executable, "-m", "cnn_jax.sweep", *args]
  if not wait:
    return subprocess.Popen(cmd, cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
  return subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True,
                        timeout=timeout)


def sweep_here(capfd, *args):
  return run_cli("cnn_jax.sweep.runner", list(args), capfd)  # what `-m cnn_jax.sweep` runs


def one_error_line(proc) -> str:
  lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert proc.returncode != 0 and len(lines) == 1, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  return lines[0]


@pytest.mark.slow
def test_tiny_sweep_end_to_end_skip_and_resume(fashion_data_dir, tmp_path, capfd, caplog):
  exp = write_experiment(tmp_path / "tiny.py")
  wd = tmp_path / "wd"
  args = [f"--config={exp}", f"--workdir={wd}", "--seeds=2",
          f"--config.data_dir={fashion_data_dir}"]
  first = sweep(*args)
  assert first.returncode == 0, first.stderr[-3000:]
  for cell in ("narrow", "wide"):
    for k in (0, 1):
      run = wd / cell / f"seed_{k}"
      results = json.loads((run / "results.json").read_text())
      assert results["steps"] == 6 and results["model_kwargs"]["width"] == (2 if cell ==
                                                                             "narrow" else 4)
      config = json.loads((run / "config.json").read_text())
      assert config["seed"] == k
      kinds = [json.loads(l)["kind"] for l in (run / "history.jsonl").read_text().splitlines()]
      assert kinds.count("train") == 2 and kinds.count("eval") == 2, kinds
  summary = json.loads((wd / "summary.json").read_text())
  assert summary["verdict"] in (verdict.REPRODUCED, verdict.NOT_REPRODUCED,
                                verdict.INCONCLUSIVE)
  assert summary["cells"]["wide"]["metrics"]["test_error"]["n"] == 2
  assert summary["cells"]["narrow"]["params"] < summary["cells"]["wide"]["params"]
  report = (wd / "report.md").read_text()
  assert "| `narrow` | 2/2 |" in report and "plot.png" in report and "wider is better" in report
  assert (wd / "plot.png").stat().st_size > 1000

  # A rerun trains nothing: every run is skipped and results.json stays as it was. (In this
  # process: the log is caplog's.)
  mtime = (wd / "wide" / "seed_1" / "results.json").stat().st_mtime_ns
  caplog.set_level(logging.INFO)
  again = sweep_here(capfd, *args)
  assert again.returncode == 0, again.stderr[-3000:]
  assert caplog.text.count("finished earlier, skipped") == 4
  assert "first step" not in caplog.text
  assert (wd / "wide" / "seed_1" / "results.json").stat().st_mtime_ns == mtime

  # --report alone rewrites the report from the runs, training nothing.
  (wd / "report.md").unlink()
  caplog.clear()
  report_only = sweep_here(capfd, *args, "--report")
  assert report_only.returncode == 0 and "report:" in caplog.text
  assert "first step" not in caplog.text
  assert "| `wide` | 2/2 |" in (wd / "report.md").read_text()

  # The studies table of a README is generated from summary.json.
  readme = tmp_path / "README.md"
  readme.write_text("# Studies\n\n" + index.BEGIN + "\nold\n" + index.END + "\n")
  index.main(["index", str(tmp_path), str(readme)])
  table = readme.read_text()
  assert "old" not in table and "`wd` (4/4 runs)" in table and "wider is better" in table
  # An experiment file beside the README with no results yet is listed as not run yet.
  assert "| `tiny` (not run yet) | wider is better | – | not run yet |" in table
  assert summary["claims"][0]["verdict"] in table

  # Another experiment's cells, or other overrides, are refused before anything trains.
  other = write_experiment(tmp_path / "other.py")
  assert "holds the cells of tiny.py" in one_error_line(sweep_here(
      capfd, f"--config={other}", f"--workdir={wd}", f"--config.data_dir={fashion_data_dir}"))
  assert "was run with the overrides" in one_error_line(
      sweep_here(capfd, *args, "--config.learning_rate=0.5"))


@pytest.mark.slow
def test_killed_run_resumes_from_its_checkpoint(fashion_data_dir, tmp_path):
  exp = write_experiment(tmp_path / "tiny.py", cells=CELLS[:1], steps=120, ckpt=20,
                         extra="\ndel get_claims\n")  # a study may state no claim
  wd = tmp_path / "wd"
  args = [f"--config={exp}", f"--workdir={wd}", "--seeds=1",
          f"--config.data_dir={fashion_data_dir}"]
  proc = sweep(*args, wait=False)
  ckpts = wd / "narrow" / "seed_0" / "checkpoints"
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    if ckpts.exists() and any(p.name.isdigit() for p in ckpts.iterdir()):
      break
    time.sleep(0.2)
  assert proc.poll() is None, "the run finished before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (wd / "narrow" / "seed_0" / "results.json").exists()
  again = sweep(*args)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "narrow seed 0: resuming" in again.stderr
  assert "resumed at step" in again.stderr
  assert json.loads((wd / "narrow" / "seed_0" / "results.json").read_text())["steps"] == 120
  history = [json.loads(l) for l in
             (wd / "narrow" / "seed_0" / "history.jsonl").read_text().splitlines()]
  steps = [r["step"] for r in history if r["kind"] == "train"]
  assert steps == sorted(set(steps)), "a resumed history repeats no step"


W = {"name": "wide"}


@pytest.mark.parametrize("cells,extra,args,expected", [
    ([W, {"name": "wide"}], "", [], "cell name 'wide' appears twice"),
    ([W, {"name": "narrow", "learning_rat": 0.1}], "", [],
     "overrides 'learning_rat', which the base"),
    ([W, {"name": "narrow"}], "", ["--only=b"], "--only names no cell b"),
    ([W, {"name": "narrow"}], "", ["--config.batch_sise=3"],
     "unknown config field config.batch_sise"),
    ([W, {"name": "narrow", "model_kwargs.stem": "smal"}], "", [],
     "cell 'narrow': resnet18: unknown stem 'smal'"),
    ([W, {"name": "narrow"}], "\ndel get_sweep\n", [], "has no get_sweep(arg) function"),
    ([W], "", [], "claim names cell 'narrow', which get_sweep lacks"),
])
def test_bad_experiment_is_one_line_before_training(tmp_path, capfd, cells, extra, args,
                                                    expected):
  exp = write_experiment(tmp_path / "bad.py", cells=cells, extra=extra)
  proc = sweep_here(capfd, f"--config={exp}", f"--workdir={tmp_path / 'wd'}", *args)
  assert expected in one_error_line(proc)
  assert not os.path.exists(tmp_path / "wd" / "wide")


@pytest.mark.parametrize("config,expected", [
    ("experiments/no_such_study.py", "no_such_study.py"),
    ("experiments/vgg_lrn.py:imagnet", "'imagnet'"),  # a misspelt scale
])
def test_unknown_experiment_file_or_argument(tmp_path, capfd, config, expected):
  proc = sweep_here(capfd, f"--config={config}", f"--workdir={tmp_path}")
  assert expected in one_error_line(proc)


def _study_files() -> list[str]:
  """Every experiment file of experiments/ (a module with get_sweep)."""
  names = []
  for f in sorted(os.listdir(os.path.join(ROOT, "experiments"))):
    if f.endswith(".py"):
      with open(os.path.join(ROOT, "experiments", f)) as fh:
        if "\ndef get_sweep(" in fh.read():
          names.append(f[:-3])
  return names


STUDIES = _study_files()


def test_the_studies_are_found():
  assert {"vgg_lrn", "vgg_depth", "resnet_degradation", "resnet_shortcuts"} <= set(STUDIES)


@pytest.mark.parametrize("name", STUDIES)
@pytest.mark.parametrize("arg", ["", ":imagenet"])
def test_study_files_load_and_check(name, arg):
  """Every committed study's cells pass check_config at both scales (nothing trains)."""
  from cnn_jax.cli import load_module
  from cnn_jax.main import check_config
  from cnn_jax.sweep import experiment
  path = os.path.join(ROOT, "experiments", f"{name}.py")
  module = load_module(path)
  a = arg[1:] if arg else None
  base = module.get_config(a) if a else module.get_config()
  exp = experiment.load(path, a, base)
  assert len(exp.cells) >= 2 and exp.claims
  if arg:
    assert base.dataset == "imagenet2012" and base.image_size >= 224
    return
  for cell in exp.cells:
    check_config(experiment.cell_config(exp, cell, {}, seed=0))


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_cell_feeds_and_traces(name, fashion_data_dir):
  """Each committed study, every cell: the input pipeline gives a first batch at the
  file's input size (built once per distinct dataset, size, augmentation and model), and
  the trainer's train step traces on it (model, loss, gradient,
  optimiser update: `jax.eval_shape`, nothing compiled), so no experiment file rots. This
  replaced a 2-step subprocess sweep per study (10-80 s each on 2 cores, first two cells
  only); the runner itself runs end to end in the tiny-sweep tests and
  test_a_study_runs_as_a_tiny_sweep."""
  import jax
  import numpy as np

  from cnn_jax import data
  from cnn_jax.cli import load_module
  from cnn_jax.sweep import experiment
  from cnn_jax.train.loop import model_spec, trace_train_step
  path = os.path.join(ROOT, "experiments", f"{name}.py")
  exp = experiment.load(path, None, load_module(path).get_config())
  batches = {}
  for cell in exp.cells:
    config = experiment.cell_config(exp, cell, {}, seed=0)
    config.data_dir, config.batch_size, config.shuffle_buffer = fashion_data_dir, 8, 64
    info = data.info(config.dataset)
    key = (config.dataset, config.image_size, config.augment, config.mixup_alpha,
           config.cutmix_alpha, config.model)
    if key not in batches:
      pipeline = data.create_input(config, model_spec=model_spec(config))
      batches[key] = next(pipeline.train_iter(0))
    batch = batches[key]
    assert batch["image"].shape == (8, config.image_size, config.image_size, info.channels)
    state, metrics = trace_train_step(config, batch, info.num_classes)
    assert metrics["loss"].shape == () and metrics["loss"].dtype == np.float32, cell
    assert int(np.prod(jax.tree.leaves(state.params)[0].shape)) > 0


@pytest.mark.slow
def test_a_study_runs_as_a_tiny_sweep(fashion_data_dir, tmp_path, capfd):
  """One committed study (the chapter's first claim, VGG's LRN) through the runner end to
  end, cut to its LRN cell, 2 steps of batch 8 and 16 test images: the model builds at the
  file's input size, trains, evaluates and reports (a claim whose baseline did not run is
  reported too). Every cell of every study is traced in test_every_study_cell_feeds_and_traces;
  a second cell here compiled another VGG for ~8 s."""
  name = "vgg_lrn"
  cells = ["vgg11_lrn"]
  wd = tmp_path / "wd"
  proc = sweep_here(capfd, f"--config=experiments/{name}.py", f"--workdir={wd}", "--seeds=1",
               f"--only={','.join(cells)}", "--config.num_train_steps=2",
               "--config.batch_size=8", "--config.eval_batch_size=8",
               "--config.eval_max_examples=16", "--config.log_every_steps=1", QUICK_SHUFFLE,
               f"--config.data_dir={fashion_data_dir}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  for cell in cells:
    results = json.loads((wd / cell / "seed_0" / "results.json").read_text())
    assert results["steps"] == 2 and results["eval_examples"] == 16
  report = (wd / "report.md").read_text()
  assert "| `vgg11` | 0/1 (not started) |" in report and "| `vgg11_lrn` | 1/1 |" in report
  claim = json.loads((wd / "summary.json").read_text())["claims"][0]
  assert claim["n_baseline"] == 0 and claim["verdict"] == verdict.INCONCLUSIVE


@pytest.mark.slow
def test_a_failing_run_is_reported_and_the_others_still_run(fashion_data_dir, tmp_path, capfd,
                                                           caplog):
  # batch 60032 passes check_config (nothing compiles) but the trainer refuses it: the
  # training split has 60000 examples.
  cells = [{"name": "narrow", "model_kwargs.width": 2, "batch_size": 60032},
           {"name": "wide", "model_kwargs.width": 2}]
  exp = write_experiment(tmp_path / "tiny.py", cells=cells, steps=3)
  wd = tmp_path / "wd"
  proc = sweep_here(capfd, f"--config={exp}", f"--workdir={wd}", "--seeds=1",
                    f"--config.data_dir={fashion_data_dir}")
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert "narrow seed 0 failed" in caplog.text and "1 run(s) failed" in caplog.text
  assert (wd / "narrow" / "seed_0" / "error.txt").exists()
  assert (wd / "wide" / "seed_0" / "results.json").exists()
  summary = json.loads((wd / "summary.json").read_text())
  assert summary["cells"]["narrow"]["runs"] == {"0": "failed"}
  assert "| `narrow` | 0/1 (failed) |" in (wd / "report.md").read_text()


def test_steps_to_metrics_are_counts_not_percentages():
  from cnn_jax.sweep import metrics, report
  assert metrics.is_fraction("test_error") and metrics.is_fraction("generalization_gap")
  assert not metrics.is_fraction("steps_to_train_error@0.25")
  assert not metrics.is_fraction("params")
  assert report._fmt("steps_to_train_error@0.25", {"n": 2, "mean": 170.0, "std": 10.0}) \
      == "170.00 ± 10.00"
  assert report._fmt("test_error", {"n": 2, "mean": 0.25, "std": 0.01}) == "25.00 ± 1.00%"
  claim = {"metric": "steps_to_train_error@0.25", "improvement": -73.3,
           "interval_half_width": 33.3}
  assert index._improvement(claim) == "-73.3 ± 33.3"
  assert index._improvement({**claim, "metric": "test_error", "improvement": 0.0123,
                             "interval_half_width": 0.004}) == "+1.23 ± 0.40 points"
