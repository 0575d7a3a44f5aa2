"""Inception v3: label smoothing and the auxiliary classifier as regularisers.

TODO docstring
"""

from configs import common
from configs import inception as inception_config

AUX_WEIGHT = 0.4


def _scale(arg) -> str:
  return common.study_scale(arg, "inception_v3_regularisers")


def get_config(arg: str = ""):
  if _scale(arg) == "imagenet":
    c = inception_config.recipe("inception_v3")
  else:
    c = inception_config.cpu_study("inception_v3", steps=200)
    c.lr_schedule = "cosine"
  # The base is "neither"; the cells switch each regulariser on.
  c.label_smoothing = 0.0
  c.aux_loss_weight = 0.0
  c.model_kwargs = {**c.model_kwargs, "aux_logits": False}
  return c


def get_sweep(arg: str = ""):
  aux = {"model_kwargs.aux_logits": True, "aux_loss_weight": AUX_WEIGHT}
  smooth = {"label_smoothing": 0.1}
  return [{"name": "neither"}, {"name": "label_smoothing", **smooth},
          {"name": "aux", **aux}, {"name": "both", **smooth, **aux}]


def get_claims(arg: str = ""):
  return [
      {"metric": "test_error", "variant": "label_smoothing", "baseline": "neither",
       "expect": "better", "text": "label smoothing"},
      {"metric": "test_error", "variant": "aux", "baseline": "neither",
       "expect": "better", "text": "aux"},
  ]


def get_report(arg: str = ""):
  return {"plot": "curves"}
