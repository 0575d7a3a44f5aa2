"""The quickstart: a small ResNet on Fashion-MNIST, trained on 2 CPU cores in ~4 minutes.

  python -m cnn_jax.main --config=configs/fashion_mnist.py --workdir=workdirs/fmnist

ResNet-18's layout (stages of 2 basic blocks) with the small-image stem (one 3x3/1 conv,
no max-pool) and a base width of 16 instead of 64. Expected: >= 91% test top-1
(measured figures in README.md).
"""

from configs import default


def get_config():
  c = default.get_config()
  c.model = "resnet18"
  c.model_kwargs = {"stem": "small", "width": 16}
  c.dataset = "fashion_mnist"
  c.image_size = 28
  c.augment = "none"
  c.batch_size = 128
  c.num_epochs = 2.0
  c.optimizer = "nesterov"
  c.learning_rate = 0.1
  c.lr_schedule = "cosine"
  c.warmup_epochs = 0.1
  c.weight_decay = 5e-4
  c.label_smoothing = 0.0
  c.log_every_steps = 100
  c.checkpoint_every_steps = 500
  return c
