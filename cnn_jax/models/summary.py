"""Parameter and multiply-accumulate counts computed from the model code, never typed.

`python -m cnn_jax.models.summary [names...]` prints the README's zoo table.
"""

from __future__ import annotations

import functools
import math
import sys

import jax
import jax.numpy as jnp
from jax.extend import core as jax_core

from cnn_jax.layers import dense, depthwise, patches
from cnn_jax.models import registry


def abstract_variables(model, size: int, channels: int = 3):
  """Variable shapes of `model` at a square input, without allocating or computing."""
  init = functools.partial(model.init, train=False)
  return jax.eval_shape(init, jax.random.key(0), jnp.zeros((1, size, size, channels)))


def count_params(name: str, size: int | None = None, *, channels: int = 3,
                 **overrides) -> int:
  """Size of `params` (no BatchNorm statistics), aux heads off: the project's convention.

  `channels`: the input's channels (1 for Fashion-MNIST); the default is RGB.
  """
  spec = registry.spec(name)
  model = registry.create(name, **overrides)
  if "aux_logits" in registry.overridable_fields(name) and "aux_logits" not in overrides:
    model = registry.create(name, aux_logits=False, **overrides)
  variables = abstract_variables(model, size or spec.input_size, channels)
  return int(sum(math.prod(x.shape) for x in jax.tree.leaves(variables["params"])))


def _jaxpr_macs(jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "conv_general_dilated":
      out = eqn.outvars[0].aval.shape
      rhs = eqn.invars[1].aval.shape
      dn = eqn.params["dimension_numbers"]
      kernel_spatial = math.prod(rhs[d] for d in dn.rhs_spec[2:])
      in_per_group = rhs[dn.rhs_spec[1]]
      total += math.prod(out) * kernel_spatial * in_per_group
    elif eqn.primitive.name == "dot_general":
      (lhs_contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)
  for sub in jax_core.subjaxprs(jaxpr):  # remat and custom_vjp bodies (no scan is used)
    total += _jaxpr_macs(sub)
  return total


def count_macs(name: str, size: int | None = None, *, channels: int = 3,
               **overrides) -> int:
  """Multiply-accumulates of one image's inference forward pass (convs and dense layers),
  for a `size` x `size` x `channels` input."""
  spec = registry.spec(name)
  size = size or spec.input_size
  model = registry.create(name, **overrides)
  variables = abstract_variables(model, size, channels)
  x = jax.ShapeDtypeStruct((1, size, size, channels), jnp.float32)
  # Convolutions traced as convolutions, not as the CPU paths' multiply-adds or patches,
  # and DenseNet's transitions in the paper's order (conv, then pool).
  with depthwise.custom_vjp(False), patches.custom_path(False), dense.pool_first(False):
    jaxpr = jax.make_jaxpr(functools.partial(model.apply, train=False))(variables, x)
  return _jaxpr_macs(jaxpr.jaxpr)


def table(model_names) -> str:
  rows = ["| model | family | input | params | GMACs |", "|---|---|---:|---:|---:|"]
  for name in model_names:
    spec = registry.spec(name)
    rows.append(f"| `{name}` | {spec.family} | {spec.input_size} | "
                f"{count_params(name):,} | {count_macs(name) / 1e9:.2f} |")
  return "\n".join(rows)


if __name__ == "__main__":
  from cnn_jax import models
  print(table(sys.argv[1:] or models.names()))
