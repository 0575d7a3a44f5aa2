"""Dropout and data augmentation against overfitting (Krizhevsky et al. 2012)

  python -m cnn_jax.sweep --config=experiments/alexnet_regularisation.py \
      --workdir=experiments/results/alexnet_regularisation         # CPU scale
  python -m cnn_jax.sweep --config=experiments/alexnet_regularisation.py:imagenet \
      --workdir=DIR

Claims (Sections 4.1-4.2): without data augmentation "our network suffers from
substantial overfitting", and dropout "reduces complex co-adaptations ... Without
dropout, our network exhibits substantial overfitting." A 2x2 grid: dropout 0.5 on
fc6/fc7 on or off, times augmentation on or off. Metrics: the generalisation gap (test
error minus the training error of the last log window) and the test error.

CPU scale (the default) and what it changes (configs/alexnet.py cpu_study): AlexNet's
layout with conv widths x0.25 and fc6/fc7 of 256 units on Fashion-MNIST resized to
100 px; the training set cut to its first 2,000 images (`train_max_examples`) so that
the nets can overfit within the budget; batch 64, 400 steps (12.8 epochs) with a cosine
decay, learning rate 0.05, SGD momentum 0.9, weight decay 5e-4, Glorot initialisation;
the full 10k test split. Augmentation is `flip_crop` (random horizontal flip and a random
crop from the image padded by 7 px) instead of the paper's 224 crops of 256 px images
with PCA colour noise. 3 seeds.

imagenet: the paper's AlexNet and recipe (configs/alexnet.py: 'alexnet' augmentation,
dropout 0.5) against dropout 0 and/or centre crops only ('none' augmentation).
"""

from configs import alexnet as alexnet_config
from configs import common


def _scale(arg) -> str:
  return common.study_scale(arg, "alexnet_regularisation")


def _augment(arg) -> str:
  return "alexnet" if _scale(arg) == "imagenet" else "flip_crop"


def get_config(arg: str = ""):
  if _scale(arg) == "imagenet":
    return alexnet_config.recipe("alexnet")
  c = alexnet_config.cpu_study(steps=400, batch_size=64, log_every=20)
  c.train_max_examples = 2000
  c.learning_rate = 0.05
  return c


def get_sweep(arg: str = ""):
  return [{"name": name, "model_kwargs.dropout_rate": rate, "augment": aug}
          for name, rate, aug in (("neither", 0.0, "none"), ("dropout", 0.5, "none"),
                                  ("augment", 0.0, _augment(arg)),
                                  ("both", 0.5, _augment(arg)))]


def get_claims(arg: str = ""):
  return [
      {"metric": "generalization_gap", "variant": "dropout", "baseline": "neither",
       "expect": "better", "text": "dropout reduces overfitting (Section 4.2)"},
      {"metric": "generalization_gap", "variant": "augment", "baseline": "neither",
       "expect": "better", "text": "data augmentation reduces overfitting (Section 4.1)"},
      {"metric": "test_error", "variant": "both", "baseline": "neither", "expect": "better",
       "text": "with both, the test error is lower than with neither"},
  ]
