"""An experiment file: the contract between a study and the sweep runner.

An experiment file is a config file (like those in configs/) with two more functions:

  get_config(arg)  -> ml_collections.ConfigDict   the base config: every trainer field
  get_sweep(arg)   -> [{"name": "vgg11_lrn", "model": "vgg11_lrn", ...}, ...]
                      the cells; every other key is a dotted config field to override
                      ("model_kwargs.shortcut": "none"); a key under model_kwargs may be
                      new to the base config, any other must exist in it
  get_claims(arg)  -> [{"metric": "test_error", "variant": ..., "baseline": ...,
                        "expect": "better" | "worse" | "no_gain", "margin": 0.0,
                        "text": "the paper's words"}, ...]          (optional)
  get_report(arg)  -> {"title": ..., "plot": "curves" | "<metric> vs <metric>", ...}
                                                                       (optional)

The argument picks the scale (default: the CPU scale; "imagenet": the paper's protocol).
Every mistake in a file is a UsageError naming the file, the cell and the key.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import ml_collections

from cnn_jax import cli
from cnn_jax.cli import MODEL_KWARGS, UsageError
from cnn_jax.sweep import metrics as sweep_metrics
from cnn_jax.sweep.verdict import Claim

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclasses.dataclass(frozen=True)
class Cell:
  name: str
  overrides: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Experiment:
  path: str
  arg: str | None
  doc: str
  base: ml_collections.ConfigDict
  cells: tuple[Cell, ...]
  claims: tuple[Claim, ...]
  report: dict

  @property
  def command(self) -> str:
    return self.path + (f":{self.arg}" if self.arg is not None else "")

  def cell(self, name: str) -> Cell:
    return next(c for c in self.cells if c.name == name)


def _has_field(config, dotted: str) -> bool:
  node = config
  for part in dotted.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return False
    node = node[part]
  return True


def _check_cells(path: str, raw, base) -> tuple[Cell, ...]:
  if not isinstance(raw, (list, tuple)) or not raw:
    raise UsageError(f"{path}: get_sweep must return a non-empty list of cells "
                     f"({{'name': ..., 'model': ...}}), got {type(raw).__name__}")
  cells, seen = [], set()
  for i, entry in enumerate(raw):
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
      raise UsageError(f"{path}: cell {i} must be a dict with a 'name' string")
    name = entry["name"]
    if not _NAME.match(name):
      raise UsageError(f"{path}: cell name {name!r} must be letters, digits, '_', '-', '.'")
    if name in seen:
      raise UsageError(f"{path}: cell name {name!r} appears twice in get_sweep; names "
                       f"must be unique (they are the cells' folders)")
    seen.add(name)
    overrides = {k: v for k, v in entry.items() if k != "name"}
    for key in overrides:
      if not (_has_field(base, key) or
              (key.startswith(MODEL_KWARGS + ".") and key.count(".") == 1)):
        raise UsageError(f"{path}: cell {name!r} overrides {key!r}, which the base config "
                         f"has no field for (only model_kwargs.* may be new)")
    cells.append(Cell(name, overrides))
  return tuple(cells)


def _check_claims(path: str, raw, cells) -> tuple[Claim, ...]:
  names = {c.name for c in cells}
  claims = []
  for entry in raw or ():
    try:
      claim = Claim(**entry)
    except (TypeError, ValueError) as e:
      raise UsageError(f"{path}: bad claim {entry!r}: {e}") from None
    for side in (claim.variant, claim.baseline):
      if side not in names:
        raise UsageError(f"{path}: claim names cell {side!r}, which get_sweep lacks; "
                         f"cells: {', '.join(sorted(names))}")
    if not sweep_metrics.known(claim.metric):
      raise UsageError(f"{path}: claim metric {claim.metric!r} is unknown; choose one of "
                       f"{', '.join(sweep_metrics.names())} or "
                       f"steps_to_<train|test>_error@<threshold>")
    claims.append(claim)
  return tuple(claims)


def load(path: str, arg: str | None, base) -> Experiment:
  """Reads an experiment file; `base` is its get_config(arg) after command-line overrides."""
  module = cli.load_module(path)
  cells = _check_cells(path, cli.call_config_fn(module, path, "get_sweep", arg), base)
  claims = ()
  if hasattr(module, "get_claims"):
    claims = _check_claims(path, cli.call_config_fn(module, path, "get_claims", arg), cells)
  report = cli.call_config_fn(module, path, "get_report", arg) \
      if hasattr(module, "get_report") else {}
  return Experiment(path, arg, (module.__doc__ or "").strip(), base, cells, claims,
                    dict(report or {}))


def cell_config(experiment: Experiment, cell: Cell, cli_overrides: dict, seed: int):
  """The cell's config: the base, then the cell's overrides, then the command line's
  (which apply to every cell and win), then the seed; locked."""
  config = ml_collections.ConfigDict(experiment.base.to_dict())
  config.unlock()
  for key, value in {**cell.overrides, **cli_overrides}.items():
    if key.startswith(MODEL_KWARGS + "."):
      config.model_kwargs[key.split(".", 1)[1]] = value
    else:
      _set(config, key, value)
  config.seed = int(seed)
  config.lock()
  return config


def _set(config, dotted: str, value) -> None:
  *parents, leaf = dotted.split(".")
  node = config
  for part in parents:
    node = node[part]
  old = node[leaf]
  if isinstance(old, tuple) and isinstance(value, list):
    value = tuple(value)
  if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  node[leaf] = value
