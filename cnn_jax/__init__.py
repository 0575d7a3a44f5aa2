"""cnn_jax: the classic ImageNet CNNs in JAX / Flax linen, on one shared block library."""

__version__ = "0.1.0"
