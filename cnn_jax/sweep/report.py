"""A study's summary.json, report.md and plot.png, computed from its runs' folders.

Everything in the report is read from what the trainer wrote (results.json, history.jsonl,
config.json of each `<workdir>/<cell>/seed_<k>/`); the verdict comes from
`cnn_jax.sweep.verdict`, never from the experiment file.
"""

from __future__ import annotations

import datetime
import json
import math
import os

import numpy as np

from cnn_jax.sweep import metrics as sweep_metrics
from cnn_jax.sweep import verdict as verdict_rule

TABLE_METRICS = ("train_error", "test_error", "test_loss")


def run_dir(workdir: str, cell: str, seed: int) -> str:
  return os.path.join(workdir, cell, f"seed_{seed}")


def run_status(path: str) -> str:
  if os.path.exists(os.path.join(path, sweep_metrics.RESULTS)):
    return "finished"
  if os.path.exists(os.path.join(path, "error.txt")):
    return "failed"
  if os.path.exists(os.path.join(path, "checkpoints")) or os.path.exists(
      os.path.join(path, "history.jsonl")):
    return "interrupted"
  return "not started"


def _stats(values) -> dict:
  finite = [v for v in values if not math.isnan(v)]
  n = len(finite)
  mean = float(np.mean(finite)) if n else float("nan")
  std = float(np.std(finite, ddof=1)) if n > 1 else float("nan")
  return {"mean": mean, "std": std, "n": n, "values": finite}


def _macs(config: dict, channels: int, num_classes: int) -> float:
  """GMACs of one image's forward pass of the run's model at its training size."""
  from cnn_jax.models import summary
  try:
    return summary.count_macs(config["model"], config["image_size"], channels=channels,
                              num_classes=num_classes, **config.get("model_kwargs", {})) / 1e9
  except Exception:  # noqa: BLE001 — a figure for the table, never a reason to fail
    return float("nan")


def summarize(experiment, workdir: str, seeds: int) -> dict:
  """Per cell: run statuses, metric statistics over seeds, parameters and GMACs; per
  claim: the verdict."""
  from cnn_jax import data
  cells = {}
  runs_by_cell = {}
  metric_names = list(dict.fromkeys(sweep_metrics.names() +
                                    [c.metric for c in experiment.claims]))
  for cell in experiment.cells:
    runs, statuses = {}, {}
    for k in range(seeds):
      path = run_dir(workdir, cell.name, k)
      statuses[k] = run_status(path)
      run = sweep_metrics.read_run(path)
      if run is not None:
        runs[k] = run
    runs_by_cell[cell.name] = runs
    entry = {"overrides": cell.overrides, "runs": statuses,
             "metrics": {m: _stats([sweep_metrics.value(m, r) for r in runs.values()])
                         for m in metric_names}}
    if runs:
      first = min(runs)
      with open(os.path.join(run_dir(workdir, cell.name, first), "config.json")) as f:
        config = json.load(f)
      ds = data.info(config["dataset"])
      entry["params"] = runs[first]["results"]["params"]
      entry["gmacs"] = _macs(config, ds.channels, ds.num_classes or 1000)
      entry["image_size"] = config["image_size"]
      entry["steps"] = runs[first]["results"]["steps"]
    cells[cell.name] = entry
  outcomes = []
  for claim in experiment.claims:
    get = lambda name: [sweep_metrics.value(claim.metric, r)  # noqa: E731
                        for r in runs_by_cell[name].values()]
    vals_v = [v for v in get(claim.variant) if not math.isnan(v)]
    vals_b = [v for v in get(claim.baseline) if not math.isnan(v)]
    outcomes.append(verdict_rule.judge(claim, vals_v, vals_b,
                                       sweep_metrics.lower_is_better(claim.metric)))
  return {
      "experiment": experiment.command,
      "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "seeds": seeds,
      "cells": cells,
      "claims": [{**{k: getattr(o.claim, k) for k in ("metric", "variant", "baseline",
                                                        "expect", "margin", "text")},
                  "verdict": o.verdict, "improvement": o.improvement,
                  "interval_half_width": o.half_width, "n_variant": o.n_variant,
                  "n_baseline": o.n_baseline, "summary": o.describe()} for o in outcomes],
      "verdict": verdict_rule.overall(outcomes),
      "runs": runs_by_cell,
  }


def _fmt(metric: str, stats: dict) -> str:
  if not stats["n"]:
    return "–"
  scale, unit = (100.0, "%") if sweep_metrics.is_fraction(metric) else (1.0, "")
  mean = stats["mean"] * scale
  if stats["n"] < 2:
    return f"{mean:.2f}{unit}"
  return f"{mean:.2f} ± {stats['std'] * scale:.2f}{unit}"


def markdown(experiment, summary: dict, command: str, plot_name: str | None) -> str:
  title = experiment.report.get("title") or (
      experiment.doc.splitlines()[0] if experiment.doc else experiment.command)
  lines = [f"# {title}", "",
           f"Generated {summary['generated']} by `{command}` from the runs' own files "
           f"(results.json, history.jsonl); mean ± sample standard deviation over seeds.", ""]
  if summary["verdict"]:
    lines += [f"**Verdict: {summary['verdict']}**", ""]
    for c in summary["claims"]:
      text = f" — {c['text']}" if c["text"] else ""
      lines.append(f"- **{c['verdict']}**: {c['summary']}{text}")
    lines += ["", "Rule (`cnn_jax/sweep/verdict.py`): the improvement of the variant over "
              "the baseline (difference of means, positive = variant better) with an "
              f"interval of ±{verdict_rule.Z:g} standard errors over seeds; `better` is "
              "reproduced when the interval lies above the margin, `no_gain` when it lies "
              "at or below it; not reproduced when it lies wholly on the other side; "
              "inconclusive otherwise.", ""]
  claim_metrics = [m for m in dict.fromkeys(c["metric"] for c in summary["claims"])
                   if m not in TABLE_METRICS]
  shown = claim_metrics + list(TABLE_METRICS)
  header = ["variant", "runs"] + [m.replace("_", " ") for m in shown] + [
      "params", "GMACs", "steps", "wall s / run"]
  lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for name, cell in summary["cells"].items():
    done = sum(s == "finished" for s in cell["runs"].values())
    status = f"{done}/{len(cell['runs'])}"
    other = sorted({s for s in cell["runs"].values()} - {"finished"})
    if other:
      status += f" ({', '.join(other)})"
    row = [f"`{name}`", status] + [_fmt(m, cell["metrics"][m]) for m in shown]
    params = f"{cell['params']:,}" if "params" in cell else "–"
    gmacs = f"{cell['gmacs']:.4f}" if not math.isnan(cell.get("gmacs", float("nan"))) else "–"
    wall = cell["metrics"]["wall_seconds"]
    row += [params, gmacs, str(cell.get("steps", "–")),
            f"{wall['mean']:.0f}" if wall["n"] else "–"]
    lines.append("| " + " | ".join(row) + " |")
  lines.append("")
  if plot_name:
    lines += [f"![{title}]({plot_name})", ""]
  lines += ["Metrics: " + "; ".join(f"*{m.replace('_', ' ')}*: {sweep_metrics.describe(m)}"
                                    for m in shown) + ". *wall s / run*: as measured, "
            "compile and evaluations included; on a shared machine it moves with the load.",
            ""]
  if experiment.doc:
    lines += ["## The experiment (its docstring)", "", "```text", experiment.doc, "```", ""]
  return "\n".join(lines)


def _curve(runs: dict, kind: str):
  """Steps and the per-seed error curves of `kind` records, on the steps all seeds share."""
  per_seed = []
  for run in runs.values():
    recs = {r["step"]: 1.0 - r["top1"] for r in run["history"]
            if r["kind"] == kind and "split" not in r and "top1" in r}
    if recs:
      per_seed.append(recs)
  if not per_seed:
    return None, None
  steps = sorted(set.intersection(*(set(p) for p in per_seed)))
  return np.array(steps), np.array([[p[s] for s in steps] for p in per_seed])


def plot(experiment, summary: dict, path: str) -> bool:
  """Learning curves (train and test error, mean and a ±1 std band over seeds) or, with
  get_report()'s {"plot": "<metric> vs <x>"}, the trade-off of a metric against
  params or gmacs. Returns False when there is nothing to draw yet."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  spec = experiment.report.get("plot", "curves")
  if spec != "curves":
    y, x = (s.strip() for s in spec.split(" vs "))
    fig, ax = plt.subplots(figsize=(6, 4.5))
    drawn = False
    for name, cell in summary["cells"].items():
      stats = cell["metrics"][y]
      if not stats["n"] or x not in cell:
        continue
      ax.errorbar(cell[x], stats["mean"] * 100, yerr=(stats["std"] * 100 if stats["n"] > 1
                                                       else 0), fmt="o", capsize=3, label=name)
      drawn = True
    ax.set_xlabel(x)
    ax.set_ylabel(y.replace("_", " ") + " (%)")
    ax.set_xscale("log")
  else:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=False)
    drawn = False
    for ax, kind, label in ((axes[0], "train", "train error (log window)"),
                            (axes[1], "eval", "test error")):
      for i, (name, runs) in enumerate(summary["runs"].items()):
        steps, curves = _curve(runs, kind)
        if steps is None or not len(steps):
          continue
        mean, std = curves.mean(0) * 100, curves.std(0) * 100
        color = f"C{i % 10}"
        ax.plot(steps, mean, color=color, label=f"{name} (n={len(curves)})",
                marker="o" if kind == "eval" else None, markersize=3)
        if len(curves) > 1:
          ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2)
        drawn = True
      ax.set_xlabel("step")
      ax.set_ylabel(label + " (%)")
      ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
  if not drawn:
    plt.close(fig)
    return False
  title = experiment.report.get("title") or experiment.command
  fig.suptitle(title, fontsize=10)
  if spec != "curves":
    plt.legend(fontsize=8)
    plt.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True


def _finite(tree):
  """NaN (no value: too few seeds, an unfinished run) as JSON null."""
  if isinstance(tree, dict):
    return {k: _finite(v) for k, v in tree.items()}
  if isinstance(tree, (list, tuple)):
    return [_finite(v) for v in tree]
  if isinstance(tree, float) and not math.isfinite(tree):
    return None
  return tree


def write(experiment, workdir: str, seeds: int, command: str) -> dict:
  """Writes summary.json, plot.png and report.md into `workdir`; returns the summary."""
  summary = summarize(experiment, workdir, seeds)
  plot_name = "plot.png" if plot(experiment, summary, os.path.join(workdir, "plot.png")) \
      else None
  text = markdown(experiment, summary, command, plot_name)
  on_disk = _finite({k: v for k, v in summary.items() if k != "runs"})
  for path, content in ((os.path.join(workdir, "summary.json"),
                         json.dumps(on_disk, indent=2, sort_keys=True)),
                        (os.path.join(workdir, "report.md"), text)):
    with open(path + ".tmp", "w") as f:
      f.write(content + "\n")
    os.replace(path + ".tmp", path)
  return summary
