"""Devices, mesh, shardings and multi-host initialisation.

One `jax.jit` step over a 1-D `Mesh` named 'data': the batch is sharded over it,
parameters and optimiser state are replicated (or, with `shard_params`, split FSDP-style
along their largest divisible axis). No `pmap`. Because BatchNorm runs inside the jitted
step on the global (sharded) batch, its statistics are global-batch statistics.
"""

from __future__ import annotations

import logging
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Starts `jax.distributed` from explicit flags, or auto-detects Cloud TPU / SLURM."""
  if coordinator_address or num_processes:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  elif int(os.environ.get("SLURM_NTASKS", "1")) > 1 or "," in os.environ.get(
      "TPU_WORKER_HOSTNAMES", ""):
    jax.distributed.initialize()  # JAX reads the cluster from the environment
  else:
    return
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())


def make_mesh(devices=None) -> Mesh:
  devices = np.asarray(devices if devices is not None else jax.devices())
  return Mesh(devices.reshape(-1), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def fsdp_sharding(mesh: Mesh, shape: tuple[int, ...], min_size: int = 2**18) -> NamedSharding:
  """Shards a large array along its largest axis that the mesh size divides."""
  n = mesh.shape[DATA_AXIS]
  if int(np.prod(shape)) < min_size:
    return replicated(mesh)
  for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
    if shape[axis] % n == 0:
      spec = [None] * len(shape)
      spec[axis] = DATA_AXIS
      return NamedSharding(mesh, P(*spec))
  return replicated(mesh)


def state_shardings(mesh: Mesh, abstract_state, shard_params: bool = False,
                    min_size: int = 2**18):
  """Shardings for a pytree of abstract arrays: replicated, or FSDP for big leaves."""
  if not shard_params:
    return jax.tree.map(lambda _: replicated(mesh), abstract_state)
  return jax.tree.map(lambda x: fsdp_sharding(mesh, tuple(x.shape), min_size), abstract_state)


def global_batch(mesh: Mesh, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
  """Builds global arrays, sharded over 'data', from this process's slice of the batch."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v)
          for k, v in local_batch.items()}
