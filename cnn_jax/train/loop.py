"""The training loop: data -> jitted steps -> metrics, checkpoints and results.json.

`train_and_evaluate(config, workdir)` knows models only through the registry contract.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import data, models, parallel
from cnn_jax.train import checkpoint
from cnn_jax.train.metrics import (History, Progress, log_line, params_fingerprint,
                                   write_results)
from cnn_jax.train.optimizers import create_optimizer, learning_rate_schedule
from cnn_jax.train.state import TrainState
from cnn_jax.train.steps import all_finite, jit_eval, jit_steps, train_step

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def total_train_steps(config, steps_per_epoch: int) -> int:
  if config.num_train_steps >= 0:  # 0: evaluate only (e.g. converted weights)
    return int(config.num_train_steps)
  return int(math.ceil(config.num_epochs * steps_per_epoch))


def model_kwargs(config) -> dict:
  """`config.model_kwargs` plus the overrides a converted `init_from` checkpoint needs
  (its source's conventions: padding, BN epsilon, ...); a contradiction is an error."""
  kwargs = config.model_kwargs.to_dict()
  if not config.get("init_from"):
    return kwargs
  meta = checkpoint.pretrained_metadata(config.init_from)
  if meta["model"] != config.model:
    raise ValueError(f"init_from={config.init_from} holds {meta['model']}, not "
                     f"{config.model}; set --config.model={meta['model']}")
  for k, v in meta["overrides"].items():
    v = tuple(v) if isinstance(v, list) else v
    if k in kwargs and kwargs[k] != v:
      raise ValueError(f"model_kwargs.{k}={kwargs[k]!r} contradicts the converted "
                       f"checkpoint's {k}={v!r}; drop the override")
    kwargs[k] = v
  return kwargs


def model_spec(config):
  """The registry spec, with a converted checkpoint's input mean/std where it has one."""
  spec = models.spec(config.model)
  if config.get("init_from"):
    meta = checkpoint.pretrained_metadata(config.init_from)
    spec = dataclasses.replace(spec, mean=tuple(meta["mean"]), std=tuple(meta["std"]))
  return spec


def create_model(config, num_classes: int):
  return models.create(config.model, num_classes=num_classes, dtype=DTYPES[config.dtype],
                       **model_kwargs(config))


def tree_shapes(tree) -> dict[str, tuple]:
  """{'params/stem/conv/kernel': shape} of a variables tree (arrays, shape structs or
  orbax metadata)."""
  return {"/".join(str(getattr(k, "key", k)) for k in path): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def check_init_from_shapes(config, ours: dict, theirs: dict) -> list[str]:
  """Compares the model's variable shapes with a converted checkpoint's (tree_shapes of
  each); returns the classifier leaves that keep their fresh initialisation (another class
  count), raises ValueError (one line, with the fix) for any other mismatch."""
  missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
  if missing or extra:
    raise ValueError(f"init_from={config.init_from} does not fit the model: missing "
                     f"{missing[:3]}, unexpected {extra[:3]}; convert the weights of "
                     f"{config.model} with these model_kwargs")
  reinit = []
  for key in sorted(ours):
    mine, saved = ours[key], theirs[key]
    if mine == saved:
      continue
    if mine and len(saved) == len(mine) and saved[:-1] == mine[:-1]:
      reinit.append(key)  # the classifier: another number of classes
    elif len(mine) == 4 and saved[:2] == mine[:2] and saved[3] == mine[3]:
      raise ValueError(f"init_from: {key} expects {saved[2]} input channels (the "
                       f"checkpoint's kernel {saved}), the model gets {mine[2]} "
                       f"({config.dataset}'s images); fine-tune it on a dataset with "
                       f"{saved[2]}-channel images (e.g. --config.dataset=image_folder)")
    else:
      raise ValueError(f"init_from: {key} is {saved} in the checkpoint, {mine} in the "
                       f"model; convert the weights of the model you train (same "
                       f"--config.model and model_kwargs)")
  return reinit


def load_init_from(config, state, shardings):
  """Puts a converted checkpoint's params and BN statistics into a fresh `state`.

  A classifier whose class count differs (fine-tuning on another dataset) keeps its fresh
  initialisation and is logged; any other shape or name mismatch is an error (main.py's
  check_config finds it before compiling).
  """
  loaded = checkpoint.load_pretrained(config.init_from)
  fresh = {"params": state.params, "batch_stats": state.batch_stats}
  reinit = check_init_from_shapes(config, tree_shapes(fresh), tree_shapes(loaded))
  theirs = dict(jax.tree_util.tree_leaves_with_path(loaded))

  def pick(path, leaf):
    value = theirs[path]
    return leaf if value.shape != leaf.shape else value

  new = jax.tree_util.tree_map_with_path(pick, fresh)
  if reinit:
    logging.warning("init_from: %s keep their fresh initialisation (class count differs)",
                    ", ".join(reinit))
  params = jax.device_put(new["params"], shardings.params)
  state = state.replace(params=params, batch_stats=jax.device_put(new["batch_stats"],
                                                                  shardings.batch_stats))
  if state.ema_params is not None:
    state = state.replace(ema_params=jax.device_put(new["params"], shardings.ema_params))
  logging.info("initialised from %s", config.init_from)
  return state


def _state_init(config, model, image_shape, steps_per_epoch, total_steps):
  """(init(rng) -> TrainState, the learning-rate schedule) for `config`."""
  schedule = learning_rate_schedule(config, steps_per_epoch, total_steps)
  tx = create_optimizer(config, schedule)

  def init(rng):
    variables = model.init({"params": rng, "dropout": rng},
                           jnp.zeros((1, *image_shape), jnp.float32), train=False)
    return TrainState.create(variables, tx, use_ema=config.ema_decay > 0,
                             loss_scaling=config.dtype == "float16")
  return init, schedule


# The initialiser runs once, so on CPU it is compiled without XLA's backend optimisations:
# JAX's partitionable threefry (the default) made it the slowest program to compile of a
# small run (tiny ResNet: 5.6 -> 1.3 s; ResNet-50: 5.2 -> 2.9 s, DenseNet-121: 9.9 -> 7.7 s
# on 2 cores, for 0.9 and 0.3 s more running). The random values then differ in the last
# bits from an optimised compile, and are as deterministic.
_INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


def create_train_state(config, model, mesh, image_shape, steps_per_epoch, total_steps):
  """Initialises parameters directly into their (replicated or sharded) layout."""
  init, schedule = _state_init(config, model, image_shape, steps_per_epoch, total_steps)
  rng = jax.random.key(config.seed)
  abstract = jax.eval_shape(init, rng)
  shardings = parallel.state_shardings(mesh, abstract, config.shard_params,
                                       config.shard_params_min_size)
  options = _INIT_COMPILER_OPTIONS if mesh.devices.flat[0].platform == "cpu" else None
  state = jax.jit(init, out_shardings=shardings, compiler_options=options)(rng)
  return state, shardings, schedule


def trace_train_step(config, batch, num_classes: int):
  """The trainer's train step for `config` on a batch shaped like `batch` (the input
  pipeline's dict of arrays), traced with `jax.eval_shape`: nothing is compiled or
  allocated. It shows in seconds that the model builds, differentiates and updates at the
  config's input size with its optimiser; returns the abstract (state, metrics)."""
  model = create_model(config, num_classes)
  image_shape = tuple(batch["image"].shape[1:])
  init, _ = _state_init(config, model, image_shape, steps_per_epoch=100, total_steps=100)
  state = jax.eval_shape(init, jax.random.key(config.seed))
  step = functools.partial(train_step, apply_fn=model.apply, config=config,
                           num_classes=num_classes)
  abstract_batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in batch.items()}
  return jax.eval_shape(step, state, abstract_batch, jax.random.key(config.seed + 1))


def evaluate(eval_fn, state, batches, mesh) -> dict:
  """Metrics over every example of an eval split (padding masked out)."""
  totals = None
  for batch in batches:
    out = eval_fn(state, parallel.global_batch(mesh, batch))
    totals = out if totals is None else jax.tree.map(jnp.add, totals, out)
  totals = jax.device_get(totals)
  n = float(totals["count"])
  metrics = {"loss": float(totals["loss"]) / n, "top1": float(totals["top1"]) / n,
             "top5": float(totals["top5"]) / n, "count": int(n)}
  if "real_count" in totals:  # ImageNet ReaL labels
    metrics["real_top1"] = float(totals["real_correct"]) / max(float(totals["real_count"]), 1)
  return metrics


class _Preemption:
  """Turns SIGTERM into a stop the loop checks, so it can checkpoint before exiting.

  One process: a Python handler sets a flag. Several processes: a SIGTERM may reach only
  some of them, and each must checkpoint at the same step (a checkpoint is written by all
  processes together). JAX's preemption service does that: its own SIGTERM handler tells
  the coordination service, which picks the step after the furthest process's current one,
  and `multihost_utils.reached_preemption_sync_point(step)` turns true at that step on
  every process. No Python handler is installed then, since it would replace JAX's.

  `restore()` puts back the handler that was installed before (the sweep runner trains
  runs one after another in one process)."""

  def __init__(self):
    self._requested = False
    self._installed, self._previous = False, None
    self._multi_process = jax.process_count() > 1
    if self._multi_process:
      from jax.experimental import multihost_utils
      self._reached_sync_point = multihost_utils.reached_preemption_sync_point
      return
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
      self._installed = True
    except ValueError:  # not in the main thread (e.g. tests)
      pass

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM received: checkpointing and stopping")
    self._requested = True

  def requested_before_start(self) -> bool:
    """A SIGTERM during set-up (one process; several agree only once steps run)."""
    return self._requested

  def stop_at(self, step: int) -> bool:
    """Whether to checkpoint and stop after `step`; call it after every step."""
    if self._multi_process:
      if not self._requested and self._reached_sync_point(step):
        logging.warning("SIGTERM received by a process: every process checkpoints at "
                        "step %d and stops", step)
        self._requested = True
    return self._requested

  def restore(self) -> None:
    if self._installed:
      signal.signal(signal.SIGTERM,
                    signal.SIG_DFL if self._previous is None else self._previous)
      self._installed = False


class DivergenceError(ValueError):
  """A non-finite training loss or parameter; raised before anything non-finite is saved."""


# Fields that make a workdir's checkpoints and results another run: a config that changes
# one of them is refused in a workdir holding a run; any other change is logged.
IDENTITY_FIELDS = ("model", "model_kwargs", "optimizer", "dataset", "image_size")
CONFIG_FILE = "config.json"
_ABSENT = object()


def _flatten(tree: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict) and v:
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def check_workdir_config(config, workdir: str) -> list[str]:
  """Compares `config` with `<workdir>/config.json` of an earlier run, writing nothing.

  A change of an IDENTITY_FIELDS field is a UsageError (the checkpoints belong to another
  model, optimiser or input); other changes are returned as 'field: old -> new' and
  logged as a warning. No config.json (a new workdir): []."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return []
  try:
    with open(path) as f:
      saved = _flatten(json.load(f))
  except (OSError, ValueError) as e:
    logging.warning("cannot read %s (%s); it will be rewritten", path, e)
    return []
  new = _flatten(json.loads(config.to_json_best_effort()))
  changed = sorted(k for k in saved.keys() | new.keys()
                   if saved.get(k, _ABSENT) != new.get(k, _ABSENT))

  def describe(k):
    show = lambda v: "(unset)" if v is _ABSENT else json.dumps(v)
    return f"{k}: {show(saved.get(k, _ABSENT))} -> {show(new.get(k, _ABSENT))}"

  refused = [describe(k) for k in changed if k.split(".")[0] in IDENTITY_FIELDS]
  if refused:
    from cnn_jax.cli import UsageError
    raise UsageError(f"workdir {workdir} holds a run of another config ({'; '.join(refused)}); "
                     f"choose another --workdir, or delete {workdir} to start over")
  changes = [describe(k) for k in changed]
  if changes:
    logging.warning("workdir %s was run with another config; continuing with: %s", workdir,
                    "; ".join(changes))
  return changes


def _write_config(config, workdir: str) -> None:
  path = os.path.join(workdir, CONFIG_FILE)
  with open(path + ".tmp", "w") as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  os.replace(path + ".tmp", path)


def finished_results(workdir: str, total_steps: int, latest_checkpoint: int | None):
  """The saved results.json of a run that already trained `total_steps` (its newest
  checkpoint, if any are left, at that step); None otherwise."""
  path = os.path.join(workdir, "results.json")
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError):
    return None
  if saved.get("steps") != total_steps or latest_checkpoint not in (None, total_steps):
    return None
  return saved


def train_and_evaluate(config, workdir: str, *, source: str = "") -> dict:
  """Trains `config` in `workdir` (resuming from its newest checkpoint) and evaluates.

  `source` says where the config came from (e.g. "configs/resnet.py:resnet18" plus the
  command-line overrides); it is recorded in results.json beside the model's overrides so
  runs can be told apart.

  Returns the results (also written to `<workdir>/results.json`; a run found finished
  there returns them untouched), or {"preempted": True, "steps": step} after a SIGTERM:
  the checkpoint of `step` is committed, the caller chooses the exit status. SIGTERM's
  previous handler is back in place when this returns or raises. Raises UsageError for
  a workdir holding another config's run or a train split smaller than the batch,
  checkpoint.CheckpointError when no checkpoint restores, DivergenceError for a
  non-finite loss (messages are one line).
  """
  preemption = _Preemption()
  managers = []  # the checkpoint managers, once made
  try:
    return _train_and_evaluate(config, workdir, source, preemption, managers)
  except BaseException:
    # A failure (a write error, out of memory, divergence, Ctrl-C) must not cut short the
    # asynchronous save of an earlier step in flight: the rerun resumes from it.
    for mngr in managers:
      try:
        mngr.wait_until_finished()
      except Exception:  # noqa: BLE001 — the failure being raised says more
        pass
    raise
  finally:
    preemption.restore()


def _train_and_evaluate(config, workdir: str, source: str, preemption: _Preemption,
                        managers: list) -> dict:
  t_start = time.perf_counter()
  config_changes = check_workdir_config(config, workdir)  # before anything is written
  is_main = jax.process_index() == 0
  mesh = parallel.make_mesh()
  spec = model_spec(config)
  input_pipeline = data.create_input(config, model_spec=spec,
                                     process_index=jax.process_index(),
                                     process_count=jax.process_count())
  ds_info = input_pipeline.info
  steps_per_epoch = input_pipeline.train.num_batches
  if steps_per_epoch == 0 and config.num_train_steps != 0:
    from cnn_jax.cli import UsageError
    n, devices = input_pipeline.train.num_examples, jax.device_count()
    raise UsageError(
        f"the {data.train_split(config, ds_info)} split of {config.dataset} has {n} "
        f"examples, fewer than the global batch_size={config.batch_size}, so an epoch has "
        f"no step; set --config.batch_size to at most {max(n // devices * devices, devices)}")
  total_steps = total_train_steps(config, steps_per_epoch)
  os.makedirs(workdir, exist_ok=True)
  ckpt = checkpoint.manager(workdir, config.keep_checkpoints)
  managers.append(ckpt)
  finished = finished_results(workdir, total_steps, ckpt.latest_step())
  if finished is not None:
    logging.info("%s holds a finished run of %d steps (results.json): nothing to train; "
                 "its results are kept (raise --config.num_train_steps or num_epochs to "
                 "train further, or choose another --workdir)", workdir, total_steps)
    return finished
  model = create_model(config, ds_info.num_classes)
  image_shape = (config.image_size, config.image_size, ds_info.channels)
  state, state_sharding, schedule = create_train_state(
      config, model, mesh, image_shape, steps_per_epoch, total_steps)
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))

  try:
    restored = checkpoint.restore_latest(
        ckpt, state, set_aside=os.path.join(os.path.abspath(workdir), "checkpoints_corrupt"))
  except checkpoint.CheckpointError as e:
    hint = (f"; the config changed since ({'; '.join(config_changes)}): the old one may "
            f"restore them" if config_changes else
            "; move them away (or choose another --workdir) to start over")
    raise checkpoint.CheckpointError(f"{e}{hint}") from None
  if restored is not None:
    state = restored
  elif config.get("init_from"):
    state = load_init_from(config, state, state_sharding)
  if is_main:  # the config passed the checks and its state restored: it is this run's now
    _write_config(config, workdir)
  from clu import metric_writers  # here, so the state and steps import without clu
  writer = metric_writers.create_default_writer(workdir, just_logging=not is_main,
                                                asynchronous=True)
  best_ckpt = checkpoint.best_manager(workdir)
  managers.append(best_ckpt)
  start_step = int(jax.device_get(state.step))
  logging.info("%s on %s: %s params, %d devices (%d processes), global batch %d, "
               "%d steps (%d per epoch)%s", config.model, config.dataset, f"{n_params:,}",
               jax.device_count(), jax.process_count(), config.batch_size, total_steps,
               steps_per_epoch, f", resumed at step {start_step}" if start_step else "")

  if config.get("eval_max_examples", -1) > 0:
    logging.warning("eval_max_examples=%d: evaluating only the first %d examples of %s "
                    "(a smoke run, not a result)", config.eval_max_examples,
                    input_pipeline.eval.num_examples, ds_info.eval_split)
  train_fn, eval_fn = jit_steps(model.apply, config, ds_info.num_classes, state_sharding,
                                parallel.batch_sharding(mesh), parallel.replicated(mesh))
  rng = jax.random.key(config.seed + 1)
  # round, not int: 120 / 468 epochs * 468 is 119.99...
  eval_every = max(round(config.eval_every_epochs * steps_per_epoch), 1)
  progress = Progress(total_steps, start_step, config.batch_size)
  history = History(workdir, start_step)
  train_iter = input_pipeline.train_iter(start_step)
  # float16's dynamic loss scaling skips a non-finite step by design; only the
  # parameters are checked then.
  check_loss = config.dtype != "float16"
  unchecked = []  # (step, loss) of the steps not yet checked for divergence

  def check_finite(step) -> None:
    """DivergenceError if a loss since the last check, or the state at `step`, is not
    finite: called before anything is logged, evaluated or saved."""
    losses = jax.device_get([loss for _, loss in unchecked]) if check_loss else []
    bad = next(((s, float(loss)) for (s, _), loss in zip(unchecked, losses)
                if not np.isfinite(loss)), None)
    unchecked.clear()
    if bad is None and bool(all_finite({"params": state.params,
                                        "batch_stats": state.batch_stats})):
      return
    at = bad[0] if bad else step
    what = (f"the training loss is {bad[1]} at step {at}" if bad else
            f"the parameters are not finite after step {at}")
    saved = ckpt.latest_step()
    raise DivergenceError(
        f"training diverged: {what} (learning rate {float(schedule(at - 1)):.4g}); nothing "
        f"of it was saved (newest checkpoint: {'none' if saved is None else saved}); lower "
        f"--config.learning_rate, or add --config.warmup_epochs or --config.grad_clip_norm")

  def run_eval(name, fn, batches, step) -> dict:
    """Evaluates, then logs it to the console, TensorBoard and the history."""
    metrics = evaluate(fn, state, batches, mesh)
    prefix = "eval" if name is None else name
    log_line(step, total_steps, {f"{prefix}_{k}": v for k, v in metrics.items()
                                 if k != "count"})
    writer.write_scalars(step, {f"{prefix}/{k}": v for k, v in metrics.items()})
    history.write("eval", step, step / steps_per_epoch,
                  {**metrics, **({"split": name} if name else {})})
    return metrics

  def stop_preempted(step) -> dict:
    ckpt.wait_until_finished()
    best_ckpt.wait_until_finished()
    writer.flush()
    logging.warning("stopped at step %d after SIGTERM; rerun the same command to resume",
                    step)
    return {"preempted": True, "steps": step}

  window = []
  last_train = {}
  step = start_step
  if preemption.requested_before_start() and step < total_steps:  # SIGTERM in set-up
    return stop_preempted(step)
  progress.start_window(step)
  first_step_done = False
  while step < total_steps:
    batch = parallel.global_batch(mesh, next(train_iter))
    state, metrics = train_fn(state, batch, rng)
    window.append(metrics)
    step += 1
    unchecked.append((step, metrics["loss"]))
    if not first_step_done:  # keep compile time out of the throughput figures
      jax.block_until_ready(metrics)
      logging.info("first step (compile included) done after %.1fs",
                   time.perf_counter() - t_start)
      progress.start_window(step)
      window, first_step_done = [], True
    if window and (step % config.log_every_steps == 0 or step == total_steps):
      check_finite(step)
      scalars = {k: float(np.mean([m[k] for m in jax.device_get(window)]))
                 for k in window[0]}
      speed = progress.end_window(step)
      scalars["learning_rate"] = float(schedule(step))
      log_line(step, total_steps, scalars, speed)
      writer.write_scalars(step, {f"train/{k}": v for k, v in scalars.items()})
      writer.write_scalars(step, {"train/images_per_second": speed["images_per_second"]})
      history.write("train", step, step / steps_per_epoch,
                    {**scalars, "images_per_second": speed["images_per_second"]})
      last_train = scalars
      window = []
      progress.start_window(step)
    if step % eval_every == 0 and step != total_steps:
      check_finite(step)
      eval_metrics = run_eval(None, eval_fn, input_pipeline.eval_iter(), step)
      checkpoint.save_if_best(best_ckpt, state, eval_metrics)
      progress.start_window(step)
    stop = preemption.stop_at(step)
    if step % config.checkpoint_every_steps == 0 or stop:
      check_finite(step)
      checkpoint.save(ckpt, state, force=stop)
    if stop:
      return stop_preempted(step)
  check_finite(step)
  if ckpt.latest_step() != step:
    checkpoint.save(ckpt, state, force=True)
  eval_metrics = run_eval(None, eval_fn, input_pipeline.eval_iter(), step)
  checkpoint.save_if_best(best_ckpt, state, eval_metrics)
  extra_results = {}
  for name, (_, batches_fn, class_subset) in input_pipeline.extra_evals.items():
    extra_fn = jit_eval(model.apply, ds_info.num_classes, state_sharding,
                        parallel.batch_sharding(mesh), parallel.replicated(mesh), class_subset)
    extra = run_eval(name, extra_fn, batches_fn(), step)
    extra_results.update({f"{name}_{k}": v for k, v in extra.items()})
  ckpt.wait_until_finished()
  best_ckpt.wait_until_finished()
  writer.flush()
  results = {
      "model": config.model, "model_kwargs": model_kwargs(config),
      "source": source, "dataset": config.dataset, "steps": step,
      "top1": eval_metrics["top1"], "top5": eval_metrics["top5"],
      "loss": eval_metrics["loss"], "eval_examples": eval_metrics["count"],
      "wall_seconds": time.perf_counter() - t_start,
      "train_images_per_second": progress.images_per_second,
      # The last log window's running averages (training mode: dropout, augmentation).
      **{f"train_{k}": v for k, v in last_train.items() if k in ("loss", "top1")},
      "params": n_params, "devices": jax.device_count(), "processes": jax.process_count(),
      "params_fingerprint": params_fingerprint(state.params),
      **extra_results,
  }
  # As results.json holds them (tuples as lists), so a rerun of the finished run returns
  # the same dict.
  results = json.loads(json.dumps(results))
  write_results(workdir, results)
  logging.info("results: %s", json.dumps(results))
  return results
