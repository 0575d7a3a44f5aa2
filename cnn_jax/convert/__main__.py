r"""Writes a converted checkpoint that `--config.init_from` loads.

  python -m cnn_jax.convert --model=resnet50 --source=torchvision \
      --weights=resnet50-11ad3fa6.pth --out=pretrained/resnet50_tv [--verify]
  python -m cnn_jax.convert --model=resnet50 --source=keras \
      --weights=resnet50.weights.h5 --out=pretrained/resnet50_keras

The output directory holds the orbax variables tree and `cnn_jax_pretrained.json` (model
name, the overrides the source's conventions need, the input mean/std). `--verify` runs
the source model and ours on one random batch and prints the largest logit difference.
"""

from __future__ import annotations

import os
import sys
import traceback

from absl import flags

from cnn_jax import flag_parsing

_MODEL = flags.DEFINE_string("model", None, "Registry name, e.g. resnet50.")
_SOURCE = flags.DEFINE_enum("source", None, ["torchvision", "keras"],
                            "Where the weights come from.")
_WEIGHTS = flags.DEFINE_string("weights", None,
                               ".pth/.pt/.safetensors (torchvision) or .keras/.weights.h5 (Keras).")
_OUT = flags.DEFINE_string("out", None, "New directory for the converted checkpoint.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 1000,
                                    "Classes of a Keras .weights.h5 file (its architecture "
                                    "is rebuilt before loading).")
_INPUT_SIZE = flags.DEFINE_integer("input_size", None,
                                   "Input size to rebuild a Keras .weights.h5 architecture "
                                   "for (and to --verify at); default Keras's.")
_VERIFY = flags.DEFINE_bool("verify", False, "Compare logits with the source model.")
_VERBOSE = flags.DEFINE_bool("verbose", False,
                             "Print the traceback behind an error line.")


def _source_logits(source: str, name: str, weights, num_classes: int, x):
  """The source model's logits on NHWC `x` (already normalised as the source expects)."""
  import numpy as np

  from cnn_jax.convert import SOURCE_BUILDERS
  if source == "keras":
    out = weights(x, training=False)
    if weights.layers[-1].get_config().get("activation") == "softmax":
      raise ValueError("the .keras model ends in softmax; --verify compares logits (convert "
                       "without --verify, or save it with classifier_activation=None)")
    return np.asarray(out)
  from cnn_jax.convert.torch_import import block_triton
  block_triton()
  import torch
  import torchvision
  model = getattr(torchvision.models, SOURCE_BUILDERS["torchvision"][name])(
      weights=None, num_classes=num_classes)
  if "aux1.conv.conv.weight" in weights or "AuxLogits.fc.weight" in weights:
    model = getattr(torchvision.models, SOURCE_BUILDERS["torchvision"][name])(
        weights=None, num_classes=num_classes, aux_logits=True, init_weights=False)
  if hasattr(model, "transform_input"):
    model.transform_input = False
  model.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in weights.items()})
  with torch.no_grad():
    out = model.eval()(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
  return out.numpy()


def main(argv) -> None:
  del argv
  import numpy as np

  from cnn_jax import convert, models
  from cnn_jax.train import checkpoint

  try:
    name, source = _MODEL.value, _SOURCE.value
    spec = models.spec(name)
    convert.converter(source, name)  # unsupported pairs fail before any file is read
    out = os.path.abspath(_OUT.value)
    parent = out
    while not os.path.exists(parent):
      parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
      raise FileExistsError(f"--out={_OUT.value} cannot be a directory: {parent} is a "
                            f"file; choose a new directory")
    if parent == out and os.listdir(out):
      raise FileExistsError(f"--out={_OUT.value} is not empty; choose a new directory")
    if source == "torchvision":
      weights = convert.load_state_dict(_WEIGHTS.value)
    else:
      weights = convert.load_keras(name, _WEIGHTS.value, _NUM_CLASSES.value,
                                   _INPUT_SIZE.value)
    result = convert.convert(source, name, weights)
  except (ValueError, KeyError, FileNotFoundError, FileExistsError, ImportError) as e:
    if _VERBOSE.value:
      traceback.print_exc()
    # A KeyError's str() is its repr (quoted); the message is its argument.
    message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    sys.exit(f"error: {' '.join(str(message).split())}")
  if _VERIFY.value:
    size = spec.input_size if spec.family == "classic" else max(spec.min_input_size, 75)
    if source == "keras" and weights.input_shape[1]:  # a Keras model built for one size
      size = weights.input_shape[1]
    x = np.random.default_rng(0).standard_normal((2, size, size, 3)).astype(np.float32)
    ours = np.asarray(result.model().apply(result.variables, x, train=False))
    theirs = _source_logits(source, name, weights, result.num_classes,
                            x[..., ::-1] if result.source_bgr else x)
    print(f"verify: max |logit difference| {float(np.max(np.abs(ours - theirs))):.3g} "
          f"at {size} px")
  checkpoint.save_pretrained(_OUT.value, result.variables, result.metadata())
  print(f"wrote {name} ({source}, {result.num_classes} classes) to {_OUT.value}; train or "
        f"evaluate from it with --config.model={name} --config.init_from={_OUT.value} "
        f"(add --config.num_train_steps=0 to only evaluate)")


if __name__ == "__main__":
  flag_parsing.run(main, required=["model", "source", "weights", "out"])
