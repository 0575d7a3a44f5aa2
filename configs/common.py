"""What the family configs share: the config-string parser and the smoke settings.

A family config's argument (`--config=configs/resnet.py:ARG`) is parsed big_vision style
by `parse_arg`: comma-separated tokens, one of which may name the variant, the others
flags (`paper`, `smoke`) or `key=value` pairs:

  python -m cnn_jax.main --config=configs/resnet.py:resnet50,paper
  python -m cnn_jax.main --config=configs/vgg.py:vgg11,smoke   # a CPU smoke run
"""

from __future__ import annotations

import difflib

import ml_collections

_BOOLS = {"true": True, "false": False, "1": True, "0": False}


def _type_name(default) -> str:
  return "str" if default is None else type(default).__name__


def _convert(value: str, default):
  """`value` as the type of `default` (None: str); ValueError if it does not convert."""
  if isinstance(default, bool):
    try:
      return _BOOLS[value.lower()]
    except KeyError:
      raise ValueError(value) from None
  if isinstance(default, int):
    return int(value)
  if isinstance(default, float):
    return float(value)
  return value


def parse_arg(arg: str | None, *, variants: tuple[str, ...] | None = None,
              default_variant: str | None = None, family: str = "",
              **defaults) -> ml_collections.ConfigDict:
  """Parses a config file's argument string (big_vision's configs/common.py parse_arg).

  `arg` is comma-separated tokens (empty ones and surrounding spaces are ignored):
    * a bare token in `variants` picks the variant (at most one; else `default_variant`);
    * `key=value` sets a declared key (a keyword of this call), the value converted to
      the type of its default: bool (true / false / 1 / 0), int, float or str (a None
      default is a str);
    * a bare token naming a declared bool key sets it True (`resnet50,paper,smoke`).
  `family` (e.g. "ResNet") only names the config in error messages.

  Returns a ConfigDict with `variant` and every declared key. Anything else (an unknown
  token, a second variant, a value that does not convert, a non-bool key without a
  value) raises ValueError with one line naming the token, the string and the choices.
  """
  variants = tuple(variants or ())
  if variants and default_variant not in variants:
    raise ValueError(f"default_variant {default_variant!r} is not one of {variants}")
  for key, default in defaults.items():
    if key in variants or key == "variant":
      raise ValueError(f"config key {key!r} clashes with a variant name or `variant`")
    if default is not None and not isinstance(default, (bool, int, float, str)):
      raise TypeError(f"config key {key!r}: default {default!r} is not bool/int/float/str")

  what = f"{family} config argument" if family else "config argument"
  arg = "" if arg is None else str(arg)

  def choices() -> str:
    rest = [k for k, d in defaults.items() if isinstance(d, bool)]
    others = [f"{k} ({_type_name(d)})" for k, d in defaults.items() if not isinstance(d, bool)]
    if others:
      rest.append("key=value for " + ", ".join(others))
    parts = [f"a variant ({', '.join(variants)})"] if variants else []
    if rest:
      parts.append(", ".join(rest))
    if not parts:
      return "this config takes no argument"
    return "choose " + " and/or ".join(parts)

  def error(message: str, token: str) -> ValueError:
    close = difflib.get_close_matches(token.partition("=")[0],
                                      list(variants) + list(defaults), n=1, cutoff=0.7)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ValueError(f"{message} {token!r} in {arg!r}{hint}; {choices()}")

  result = {"variant": default_variant if variants else None, **defaults}
  chosen = None
  for token in arg.split(","):
    token = token.strip()
    if not token:
      continue
    key, eq, value = token.partition("=")
    key, value = key.strip(), value.strip()
    if not eq:
      if token in variants:
        if chosen is not None and chosen != token:
          raise ValueError(f"two {family + ' ' if family else ''}variants {chosen!r} and "
                           f"{token!r} in {arg!r}; choose one of {', '.join(variants)}")
        chosen = result["variant"] = token
      elif token in defaults and isinstance(defaults[token], bool):
        result[token] = True
      elif token in defaults:
        raise ValueError(f"{what} {token!r} in {arg!r} needs a value: "
                         f"{token}=<{_type_name(defaults[token])}>")
      else:
        raise error(f"unknown {what}", token)
    elif key in defaults:
      try:
        result[key] = _convert(value, defaults[key])
      except ValueError:
        kind = {"bool": "true or false (or 1 / 0)", "int": "an int"}.get(
            _type_name(defaults[key]), f"a {_type_name(defaults[key])}")
        raise ValueError(f"bad value in {what} {token!r} in {arg!r}: {key} takes "
                         f"{kind}") from None
    else:
      raise error(f"unknown {what}", token)
  return ml_collections.ConfigDict(result)


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A few steps of any family config on Fashion-MNIST on a CPU (the `smoke` flag).

  20 steps of batch 16 and an evaluation of 64 test images, float32, no augmentation, one
  centre crop; the model keeps its own input size (the 28 px images are resized to
  image_size). Everything else (model, optimiser, schedule) stays the family's.
  """
  c.dataset = "fashion_mnist"
  c.augment = "none"
  c.eval_protocol = "center"
  if "eval_scales" in c:
    c.eval_scales = None
  c.num_train_steps = 20
  c.batch_size = 16
  c.eval_batch_size = 64
  c.eval_max_examples = 64
  c.warmup_epochs = 0.0
  c.dtype = "float32"
  c.log_every_steps = 10
  c.checkpoint_every_steps = 1000
  c.extra_eval_datasets = ()
  c.shuffle_buffer = 1000
  return c


FASHION_MNIST_TRAIN = 60_000


def cpu_study(c: ml_collections.ConfigDict, *, steps: int, batch_size: int = 128,
              evals: int = 2, log_every: int = 25,
              image_size: int = 28) -> ml_collections.ConfigDict:
  """The CPU scale of the studies in experiments/: Fashion-MNIST (60k train, the full
  10k test split for every evaluation), `steps` steps of `batch_size`, `evals`
  evaluations spread evenly over the run (the last at the end), no augmentation, the
  images resized to `image_size`. The recipe fields (optimiser, rate, schedule) are the
  experiment's."""
  c.dataset = "fashion_mnist"
  c.image_size = image_size
  c.augment = "none"
  c.eval_protocol = "center"
  c.extra_eval_datasets = ()
  c.batch_size = batch_size
  c.eval_batch_size = 1000
  c.num_train_steps = steps
  steps_per_epoch = FASHION_MNIST_TRAIN // batch_size
  c.eval_every_epochs = max(steps // evals, 1) / steps_per_epoch
  c.log_every_steps = log_every
  c.checkpoint_every_steps = max(steps // 4, 1)
  c.keep_checkpoints = 1
  c.dtype = "float32"
  return c


def short_sgd(c: ml_collections.ConfigDict, learning_rate: float = 0.1,
              momentum: float = 0.9) -> ml_collections.ConfigDict:
  """The optimiser of the CPU-scale studies whose families train with RMSProp over
  hundreds of epochs (MobileNet, EfficientNet): SGD with momentum and a cosine decay from
  the first step, no label smoothing, no parameter averaging (which over a few hundred
  steps would still be the initialisation)."""
  c.optimizer = "sgd"
  c.momentum = momentum
  c.learning_rate = learning_rate
  c.lr_schedule = "cosine"
  c.warmup_epochs = 0.0
  c.label_smoothing = 0.0
  c.ema_decay = 0.0
  return c


STUDY_SCALES = ("cpu", "imagenet")


def study_scale(arg: str | None, study: str) -> str:
  """An experiment file's argument: `cpu` (default: the scale these machines afford) or
  `imagenet` (the paper's protocol on TFDS imagenet2012)."""
  return parse_arg(arg, variants=STUDY_SCALES, default_variant="cpu", family=study).variant
