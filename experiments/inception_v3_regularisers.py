"""Inception v3: label smoothing and the auxiliary classifier as regularisers (Szegedy
et al. 2015b, "Rethinking the Inception Architecture", Sections 4 and 7, Table 3).

  python -m cnn_jax.sweep --config=experiments/inception_v3_regularisers.py \
      --workdir=experiments/results/inception_v3_regularisers      # CPU scale, ~17 min
  python -m cnn_jax.sweep --config=experiments/inception_v3_regularisers.py:imagenet \
      --workdir=DIR

Claims. Label smoothing (Section 7, epsilon 0.1): "a consistent improvement of about
0.2% absolute both for the top-1 error and the top-5 error"; Table 3's cumulative rows
go from 23.1% to 22.8% top-1 when it is added. Auxiliary classifier (Section 4): it does
not speed up early training, but "near the end of training, the network with the
auxiliary branches starts to overtake the accuracy of the network without any
auxiliary branch and reaches a slightly higher plateau"; the authors read it as a
regulariser (Table 3: batch-normalising the side head takes 21.6% to 21.2% top-1).
Cells: `neither` (label_smoothing 0, no aux head), `label_smoothing` (0.1), `aux`
(model_kwargs.aux_logits with aux_loss_weight 0.4, TF-slim's) and `both`. Metrics:
test_error (the claims) and test_loss, the unsmoothed cross-entropy on the test split.

CPU scale (the default) and what it changes (configs/inception.py cpu_study):
Fashion-MNIST resized from 28 to 75 px, the smallest input inception_v3's VALID convs
accept (the 17x17 grid of the aux head becomes 3x3 and is pooled adaptively to 5x5);
every conv width x0.25 (the aux head's too: 32 and 192 instead of 128 and 768); batch
64 instead of 1600; 150 steps (0.16 epoch) with a cosine decay instead of 100 epochs of
x0.94 every 2; no augmentation; no parameter moving average; learning rate 0.1 instead
of 0.045 (measured, 100 steps: 26% train accuracy at 0.045 and batch 128, 37% at 0.1 and
batch 64; the net sits at chance for its first ~40 steps either way). Kept: RMSProp
(decay 0.9, eps 1.0, momentum 0.9), gradient clipping at 2.0, weight decay 4e-5,
dropout 0.2, BN everywhere. 3 seeds.
What it can show: whether either regulariser moves the test error of a net far from
convergence. What it cannot: the paper's 0.2-0.4 points, which come from the end of a
100-epoch ImageNet run (Section 4 says the aux head helps only near the end of
training); at ~0.16 epoch both regularisers may rather slow the fit, so "not
reproduced" or "inconclusive" are the likely outcomes and are results in their own
right.

imagenet: the same four cells on TFDS imagenet2012 with configs/inception.py's
inception_v3 recipe (RMSProp, 299 px, batch 1600, gradient clipping, parameter moving
average), each regulariser switched off where the cell says so.
"""

from configs import common
from configs import inception as inception_config

AUX_LOSS_WEIGHT = 0.4  # TF-slim's weight for the BN auxiliary head
LABEL_SMOOTHING = 0.1  # Section 7


def _scale(arg) -> str:
  return common.study_scale(arg, "inception_v3_regularisers")


def get_config(arg: str = ""):
  if _scale(arg) == "imagenet":
    c = inception_config.recipe("inception_v3")
  else:
    c = inception_config.cpu_study("inception_v3", steps=150, learning_rate=0.1,
                                   batch_size=64)
    c.lr_schedule = "cosine"
  # The base is the `neither` cell; the other cells switch the regularisers on.
  c.label_smoothing = 0.0
  c.aux_loss_weight = 0.0
  c.model_kwargs = {**c.model_kwargs, "aux_logits": False}
  return c


def get_sweep(arg: str = ""):
  smooth = {"label_smoothing": LABEL_SMOOTHING}
  aux = {"model_kwargs.aux_logits": True, "aux_loss_weight": AUX_LOSS_WEIGHT}
  return [{"name": "neither"}, {"name": "label_smoothing", **smooth},
          {"name": "aux", **aux}, {"name": "both", **smooth, **aux}]


def get_claims(arg: str = ""):
  return [
      {"metric": "test_error", "variant": "label_smoothing", "baseline": "neither",
       "expect": "better",
       "text": "label smoothing: ~0.2 points better top-1 (Section 7; Table 3 23.1% -> "
               "22.8%)"},
      {"metric": "test_error", "variant": "aux", "baseline": "neither",
       "expect": "better",
       "text": "the auxiliary classifier reaches a slightly higher plateau (Section 4)"},
  ]


def get_report(arg: str = ""):
  return {"plot": "curves"}
