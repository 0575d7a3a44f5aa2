"""MobileNet v2: linear bottlenecks and residuals between bottlenecks (Sandler et al. 2018)

  python -m cnn_jax.sweep --config=experiments/mobilenet_v2_linear_bottleneck.py \
      --workdir=experiments/results/mobilenet_v2_linear_bottleneck  # CPU scale
  python -m cnn_jax.sweep --config=experiments/mobilenet_v2_linear_bottleneck.py:imagenet \
      --workdir=DIR

Claims (Section 6.4, Figure 6): (a) a linear projection at the end of each bottleneck
beats one followed by ReLU6, which destroys information in the low-dimensional
bottleneck (Figure 6a: the non-linear bottleneck's accuracy curve sits about a point
lower); (b) shortcuts between the bottlenecks beat no shortcuts (Figure 6b). Cells:
the paper's net (`linear`: linear bottleneck, residuals), `relu6` (ReLU6 after every
projection: model_kwargs.linear_bottleneck=False) and `no_residual`
(model_kwargs.residual=False). Metric: test error.

CPU scale (the default) and what it changes (configs/mobilenet.py cpu_study):
Fashion-MNIST resized to 32 px (a 1x1 last map); width x0.5; batch 64, 400 steps
(0.43 epoch), SGD momentum 0.9, learning rate 0.03 after a 0.03-epoch (28-step) linear
warm-up, cosine decay, weight decay 4e-5, classifier dropout 0.2; no augmentation, no
label smoothing, no averaging; 3 seeds. (The other CPU studies' rate of 0.1 without
warm-up diverged here: 5 of the first 6 runs reached a NaN loss by step 50-185, and the
sixth ended at chance. A 400-step trial at 0.03 with warm-up reached 79.7% test top-1 on
2,000 test images.)

imagenet: Figure 6's comparison on TFDS imagenet2012 with configs/mobilenet.py's
MobileNet v2 recipe (RMSProp, 224 px) for the three nets.
"""

from configs import common
from configs import mobilenet as mobilenet_config


def _scale(arg) -> str:
  return common.study_scale(arg, "mobilenet_v2_linear_bottleneck")


def get_config(arg: str = ""):
  if _scale(arg) == "imagenet":
    return mobilenet_config.recipe("mobilenet_v2")
  c = mobilenet_config.cpu_study("mobilenet_v2", steps=400)
  c.learning_rate, c.warmup_epochs = 0.03, 0.03  # 0.1 without warm-up diverged
  return c


def get_sweep(arg: str = ""):
  return [{"name": "linear"},
          {"name": "relu6", "model_kwargs.linear_bottleneck": False},
          {"name": "no_residual", "model_kwargs.residual": False}]


def get_claims(arg: str = ""):
  return [
      {"metric": "test_error", "variant": "linear", "baseline": "relu6", "expect": "better",
       "text": "linear bottlenecks beat ReLU6 after the projection (Figure 6a)"},
      {"metric": "test_error", "variant": "linear", "baseline": "no_residual",
       "expect": "better", "text": "shortcuts between bottlenecks help (Figure 6b)"},
  ]
