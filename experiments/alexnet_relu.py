"""ReLU vs tanh: how fast does AlexNet fit its training set? (Krizhevsky et al. 2012)

  python -m cnn_jax.sweep --config=experiments/alexnet_relu.py \
      --workdir=experiments/results/alexnet_relu                   # CPU scale
  python -m cnn_jax.sweep --config=experiments/alexnet_relu.py:imagenet --workdir=DIR

Claim (Section 3.1, Figure 1): "deep convolutional neural networks with ReLUs train
several times faster than their equivalents with tanh units": a four-layer CNN with ReLUs
reaches 25% training error on CIFAR-10 six times faster than the same net with tanh.
Metric: the first logged step at which the training error (a log window's running
average over its batches) is at most 25%; a run that never gets there counts as its last
step (a lower bound on its true value, so the measured ratio can only understate the
paper's). Also reported: the final test error.

CPU scale (the default) and what it changes (configs/alexnet.py cpu_study): the paper's
AlexNet layout (not Figure 1's four-layer CIFAR net) on Fashion-MNIST resized to 100 px;
conv widths x0.25; fc6/fc7 of 256 units; batch 128; 200 steps (~0.43 epoch) with a
cosine decay, SGD momentum 0.9; no regularisation, as in Figure 1 (no dropout, no weight
decay, no augmentation); Glorot initialisation for both nets (with He initialisation
both stayed at chance for 100 steps; the paper's N(0, 0.01) is untested here); the
training error is logged every 10 steps. 3 seeds. `act` switches every hidden activation
(conv and fc) between ReLU and tanh (model_kwargs.act), nothing else changes. The paper
chose each net's learning rate to make it train as fast as possible; here both nets run
at the same two rates, 0.01 and 0.05, and the claim is judged at each (probes of 100
steps at 0.01, 0.03 and 0.05 all had tanh ahead early, so the rate is not what decides
it).

imagenet: the paper's AlexNet and recipe (configs/alexnet.py) with ReLU and with tanh,
the training error logged every 100 steps, threshold 25% as in Figure 1.
"""

from configs import alexnet as alexnet_config
from configs import common

THRESHOLD = 0.25  # Figure 1's training-error line


def _scale(arg) -> str:
  return common.study_scale(arg, "alexnet_relu")


def get_config(arg: str = ""):
  if _scale(arg) == "imagenet":
    c = alexnet_config.recipe("alexnet")
    c.log_every_steps = 100
    return c
  c = alexnet_config.cpu_study(steps=200)
  c.model_kwargs.dropout_rate = 0.0
  c.weight_decay = 0.0
  return c


def _rates(arg) -> tuple[float, ...]:
  return (0.01,) if _scale(arg) == "imagenet" else (0.01, 0.05)


def get_sweep(arg: str = ""):
  return [{"name": f"{act}_lr{lr:g}", "model_kwargs.act": act, "learning_rate": lr}
          for lr in _rates(arg) for act in ("relu", "tanh")]


def get_claims(arg: str = ""):
  return [
      {"metric": f"steps_to_train_error@{THRESHOLD}", "variant": f"relu_lr{lr:g}",
       "baseline": f"tanh_lr{lr:g}", "expect": "better",
       "text": f"ReLU reaches 25% training error several times faster than tanh at "
               f"learning rate {lr:g} (Figure 1: six times, on CIFAR-10)"}
      for lr in _rates(arg)]


def get_report(arg: str = ""):
  return {"plot": "curves"}
