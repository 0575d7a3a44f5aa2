"""Activations by name, so that configs and model fields can pick them as strings.

hard-sigmoid and hard-swish are MobileNet v3's (Howard et al. 2019, Sec. 5.2); tanh is the
saturating baseline of AlexNet's Fig. 1 (Krizhevsky et al. 2012).
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax


def hard_sigmoid(x: jax.Array) -> jax.Array:
  """relu6(x + 3) / 6: MobileNet v3's piecewise-linear sigmoid (Howard et al. 2019, Sec. 5.2)."""
  return jax.nn.relu6(x + 3.0) / 6.0


def hard_swish(x: jax.Array) -> jax.Array:
  """x * relu6(x + 3) / 6 (Howard et al. 2019, Sec. 5.2)."""
  return x * hard_sigmoid(x)


# Activations by name, so that configs can pick them as strings.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "relu6": jax.nn.relu6,
    "hard_swish": hard_swish,
    "silu": nn.silu,
    "sigmoid": nn.sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "tanh": nn.tanh,  # the saturating baseline of AlexNet's Fig. 1 (Krizhevsky et al. 2012)
}


def activation(name_or_fn: str | Callable) -> Callable:
  """An activation function from its name (see ACTIVATIONS) or the function itself."""
  if callable(name_or_fn):
    return name_or_fn
  if name_or_fn not in ACTIVATIONS:
    raise ValueError(f"unknown activation {name_or_fn!r}; choose one of {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[name_or_fn]
