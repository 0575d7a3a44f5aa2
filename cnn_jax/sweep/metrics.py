"""The metrics a claim or a report can name, read from one finished run's folder
(results.json and history.jsonl, both written by the trainer).

Every metric says whether lower is better; errors are fractions (0.08 = 8%).
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Callable

from cnn_jax.train.metrics import read_history

RESULTS = "results.json"


def _eval_errors(run):
  return [1.0 - r["top1"] for r in run["history"] if r["kind"] == "eval" and "split" not in r]


_METRICS: dict[str, tuple[Callable[[dict], float], bool, str]] = {
    # name: (value from a run {results, history}, lower is better, what it is)
    "test_error": (lambda r: 1.0 - r["results"]["top1"], True,
                   "top-1 error on the evaluation split at the end of training"),
    "test_top5_error": (lambda r: 1.0 - r["results"]["top5"], True,
                        "top-5 error on the evaluation split at the end of training"),
    "test_loss": (lambda r: r["results"]["loss"], True,
                  "cross-entropy on the evaluation split at the end of training"),
    "best_test_error": (lambda r: min(_eval_errors(r), default=float("nan")), True,
                        "lowest top-1 error over the run's evaluations"),
    "train_error": (lambda r: 1.0 - r["results"].get("train_top1", float("nan")), True,
                    "top-1 error on the training batches of the last log window "
                    "(training mode, as the papers' training curves)"),
    "train_loss": (lambda r: r["results"].get("train_loss", float("nan")), True,
                   "training loss of the last log window"),
    "generalization_gap": (
        lambda r: (1.0 - r["results"]["top1"]) - (1.0 - r["results"].get("train_top1",
                                                                          float("nan"))),
        True, "test error minus train error"),
    "params": (lambda r: float(r["results"]["params"]), True, "parameters"),
    "wall_seconds": (lambda r: r["results"]["wall_seconds"], True,
                     "wall time of the run (compile and evaluations included)"),
}


# steps_to_<train|test>_error@<threshold>: the first logged step at which the error is at
# or below the threshold (train: a log window's running average; test: an evaluation).
# A run that never gets there counts as its last step: a lower bound on the true value,
# which can only understate the difference between a fast and a slow variant.
_STEPS_TO = re.compile(r"^steps_to_(train|test)_error@(0?\.\d+|1(\.0*)?)$")


def _steps_to(kind: str, threshold: float, run) -> float:
  records = [r for r in run["history"] if "split" not in r and "top1" in r and
             r["kind"] == ("train" if kind == "train" else "eval")]
  for r in sorted(records, key=lambda r: r["step"]):
    if 1.0 - r["top1"] <= threshold:
      return float(r["step"])
  return float(run["results"]["steps"])


def _lookup(name: str):
  if name in _METRICS:
    return _METRICS[name]
  m = _STEPS_TO.match(name)
  if not m:
    raise KeyError(name)
  kind, threshold = m.group(1), float(m.group(2))
  return (lambda r: _steps_to(kind, threshold, r), True,
          f"first step at which the {kind} error is <= {threshold:g} (the run's last step "
          f"if never: a lower bound)")


def names() -> list[str]:
  """The fixed metrics (plus the pattern steps_to_<train|test>_error@<threshold>)."""
  return sorted(_METRICS)


def is_fraction(name: str) -> bool:
  """True for the error rates and gaps (shown as percentages); False for counts (params,
  wall seconds, steps_to_...)."""
  return not _STEPS_TO.match(name) and name.endswith(("error", "gap"))


def known(name: str) -> bool:
  return name in _METRICS or bool(_STEPS_TO.match(name))


def lower_is_better(name: str) -> bool:
  return _lookup(name)[1]


def describe(name: str) -> str:
  return _lookup(name)[2]


def read_run(run_dir: str) -> dict | None:
  """{"results", "history"} of a finished run, or None if it has not finished."""
  path = os.path.join(run_dir, RESULTS)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    results = json.load(f)
  return {"results": results, "history": read_history(run_dir)}


def value(name: str, run: dict) -> float:
  """The metric of one run; nan where the run lacks what it needs."""
  try:
    v = float(_lookup(name)[0](run))
  except (KeyError, TypeError, ValueError):
    return float("nan")
  return v if math.isfinite(v) else float("nan")
