"""`python -m cnn_jax.sweep --config=experiments/vgg_lrn.py[:ARG] --workdir=DIR
[--seeds=N] [--only=NAME,...] [--report] [--config.FIELD=VALUE ...]`

Trains every cell of an experiment file (cnn_jax/sweep/experiment.py) for seeds 0..N-1
through `cnn_jax.train.loop.train_and_evaluate`, each into `DIR/<cell>/seed_<k>/`, seed
by seed (all cells of seed 0 first, so a sweep cut short still compares every cell), then
writes DIR/summary.json, DIR/report.md and DIR/plot.png. `--config.*` overrides apply to
every cell and win over the cell's own values.

Re-running the command skips finished runs (those with results.json) and resumes an
interrupted one from its checkpoint; a run that fails is written to its folder's
error.txt, reported, and the other runs still go on (the exit status is then 1). On a
multi-host slice every host runs the same command: each run trains on all devices, runs
in sequence, and process 0 writes the report. A SIGTERM checkpoints the current run and
stops the sweep with exit status 75 (EX_TEMPFAIL) so a scheduler requeues it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback

from absl import app, flags, logging

from cnn_jax import platform
from ml_collections import config_flags  # noqa: E402

from cnn_jax import cli, flag_parsing  # noqa: E402
from cnn_jax.cli import UsageError  # noqa: E402

_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds per cell (0..N-1).", lower_bound=1)
_ONLY = flags.DEFINE_list("only", None, "Run only these cells (the report covers all).")
_REPORT = flags.DEFINE_bool("report", False, "Only (re)write the report from DIR's runs.")

SWEEP_RECORD = "sweep.json"
PREEMPTED_EXIT = 75


def _identity(experiment, cli_overrides: dict) -> dict:
  return {"experiment": os.path.basename(experiment.path), "arg": experiment.arg,
          "overrides": {k: repr(v) for k, v in sorted(cli_overrides.items())}}


def check_workdir(workdir: str, identity: dict, report_only: bool) -> None:
  """Refuses a workdir that holds another experiment's cells (or a single run)."""
  if os.path.isfile(workdir):
    raise UsageError(f"--workdir={workdir} is a file; pass a directory")
  if os.path.exists(os.path.join(workdir, "results.json")) or os.path.isdir(
      os.path.join(workdir, "checkpoints")):
    raise UsageError(f"--workdir={workdir} holds a single training run, not a sweep; "
                     f"choose another --workdir")
  path = os.path.join(workdir, SWEEP_RECORD)
  if not os.path.exists(path):
    return
  with open(path) as f:
    saved = json.load(f)
  mine = f"{identity['experiment']}:{identity['arg']}"
  theirs = f"{saved['experiment']}:{saved['arg']}"
  if mine != theirs:
    raise UsageError(f"--workdir={workdir} holds the cells of {theirs}, not {mine}; choose "
                     f"another --workdir")
  if not report_only and saved["overrides"] != identity["overrides"]:
    raise UsageError(f"--workdir={workdir} was run with the overrides {saved['overrides']}, "
                     f"not {identity['overrides']}; its finished runs would be mixed with "
                     f"different ones: repeat the same overrides or choose another --workdir")


def _prepare(base):
  """Loads the experiment, its cells' configs (checked) and the workdir; UsageError."""
  from cnn_jax.main import check_config
  from cnn_jax.sweep import experiment as experiment_lib
  path, arg = cli.config_file_and_arg()
  experiment = experiment_lib.load(path, arg, base)
  names = [c.name for c in experiment.cells]
  only = _ONLY.value
  if only:
    unknown = [n for n in only if n not in names]
    if unknown:
      raise UsageError(f"--only names no cell {', '.join(unknown)}; cells of "
                       f"{experiment.command}: {', '.join(names)}")
  cli_overrides = config_flags.get_override_values(flags.FLAGS["config"])
  configs = {}
  for cell in experiment.cells:
    config = experiment_lib.cell_config(experiment, cell, cli_overrides, seed=0)
    try:
      check_config(config)
    except UsageError as e:
      raise UsageError(f"cell {cell.name!r}: {e}") from None
    configs[cell.name] = (cell, config)
  return experiment, configs, cli_overrides, only


def _train_all(experiment, configs, cli_overrides, workdir, seeds, only, command) -> bool:
  """Trains every unfinished run; True if none failed. Exits 75 after a SIGTERM."""
  todo = [(k, name) for k in range(seeds) for name in configs
          if not only or name in only]
  # The trainer handles a SIGTERM during a run; one between runs stops before the next.
  stop = []
  previous = signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
  try:
    return _train_runs(todo, experiment, configs, cli_overrides, workdir, command, stop)
  finally:
    signal.signal(signal.SIGTERM, previous)


def _train_runs(todo, experiment, configs, cli_overrides, workdir, command, stop) -> bool:
  import jax

  from cnn_jax import data
  from cnn_jax.sweep import experiment as experiment_lib
  from cnn_jax.sweep.report import run_dir, run_status
  from cnn_jax.train.loop import train_and_evaluate

  failed, trained, t0 = [], 0, time.perf_counter()
  for i, (k, name) in enumerate(todo, 1):
    if stop:
      logging.warning("sweep stopped by SIGTERM before %s seed %d; rerun the same command "
                      "to go on", name, k)
      sys.exit(PREEMPTED_EXIT)
    path = run_dir(workdir, name, k)
    status = run_status(path)
    if status == "finished":
      logging.info("[%d/%d] %s seed %d: finished earlier, skipped", i, len(todo), name, k)
      continue
    cell, _ = configs[name]
    config = experiment_lib.cell_config(experiment, cell, cli_overrides, seed=k)
    data.prepare(config)
    if trained:
      per_run = (time.perf_counter() - t0) / trained
      eta = f", ~{per_run * (len(todo) - i + 1) / 60:.0f} min left at {per_run:.0f} s/run"
    else:
      eta = ""
    logging.info("[%d/%d] %s seed %d: %s%s", i, len(todo), name, k,
                 "resuming" if status == "interrupted" else "training", eta)
    if os.path.exists(os.path.join(path, "error.txt")):
      os.remove(os.path.join(path, "error.txt"))
    try:
      result = train_and_evaluate(config, path, source=f"{command} [cell {name}, seed {k}]")
    except Exception as e:  # noqa: BLE001 — one run's failure must not stop the study
      os.makedirs(path, exist_ok=True)
      with open(os.path.join(path, "error.txt"), "w") as f:
        f.write(traceback.format_exc())
      logging.error("%s seed %d failed: %s: %s (traceback in %s)", name, k,
                    type(e).__name__, " ".join(str(e).split())[:300],
                    os.path.join(path, "error.txt"))
      failed.append(f"{name}/seed_{k}")
      continue
    finally:
      jax.clear_caches()  # the next cell compiles its own programs (disk cache: seeds)
    if result.get("preempted"):
      logging.warning("sweep stopped by SIGTERM during %s seed %d; rerun the same command "
                      "to resume", name, k)
      sys.exit(PREEMPTED_EXIT)
    trained += 1
  if failed:
    logging.error("%d run(s) failed: %s", len(failed), ", ".join(failed))
  return not failed


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  cli.quiet_libraries()
  workdir = cli.WORKDIR.value
  try:
    if not workdir:
      raise UsageError("--workdir is required: the folder that holds the sweep's runs")
    base = cli.load_config()
    import jax

    cli.initialize_distributed()
    experiment, configs, cli_overrides, only = _prepare(base)
    identity = _identity(experiment, cli_overrides)
    check_workdir(workdir, identity, _REPORT.value)
  except UsageError as e:
    sys.exit(f"error: {e}")
  if jax.process_index() != 0:
    logging.set_verbosity(logging.WARNING)
  command = " ".join(["python -m cnn_jax.sweep", f"--config={experiment.command}",
                      f"--workdir={workdir}", f"--seeds={_SEEDS.value}"] +
                     [f"--config.{k}={v!r}" for k, v in cli_overrides.items()])
  ok = True
  if not _REPORT.value:
    if jax.process_index() == 0:
      os.makedirs(workdir, exist_ok=True)
      with open(os.path.join(workdir, SWEEP_RECORD), "w") as f:
        json.dump(identity, f, indent=2, sort_keys=True)
    platform.enable_compilation_cache()  # seeds of a cell compile the same programs
    from cnn_jax.data.errors import DataError
    try:
      ok = _train_all(experiment, configs, cli_overrides, workdir, _SEEDS.value, only,
                      command)
    except DataError as e:
      sys.exit(f"error: {e}")
  if jax.process_index() == 0:
    from cnn_jax.sweep import report
    summary = report.write(experiment, workdir, _SEEDS.value, command)
    logging.info("report: %s", os.path.join(workdir, "report.md"))
    for claim in summary["claims"]:
      logging.info("claim: %s", claim["summary"])
    if summary["verdict"]:
      logging.info("verdict: %s", summary["verdict"])
  if not ok:
    sys.exit(1)


def run() -> None:
  flag_parsing.run(main, required=["config"], parser=cli.parse_flags)


if __name__ == "__main__":
  run()
