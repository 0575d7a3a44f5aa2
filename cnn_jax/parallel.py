"""Devices, mesh, shardings and multi-host initialisation.

One `jax.jit` step over a 1-D `Mesh` named 'data': the batch is sharded over it,
parameters and optimiser state are replicated (or, with `shard_params`, split FSDP-style
along their largest divisible axis). No `pmap`. Because BatchNorm runs inside the jitted
step on the global (sharded) batch, its statistics are global-batch statistics.
"""

from __future__ import annotations

import itertools
import logging
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None,
                           heartbeat_timeout_s: int | None = None) -> None:
  """Starts `jax.distributed` from explicit flags, or auto-detects Cloud TPU / SLURM.

  `heartbeat_timeout_s`: how long the coordination service waits for a silent process
  before it declares the job failed and the other processes exit (a process killed
  outright, e.g. by the OOM killer); None keeps JAX's default (100 s)."""
  timeout = ({} if heartbeat_timeout_s is None else
             {"heartbeat_timeout_seconds": heartbeat_timeout_s})
  if coordinator_address or num_processes:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id,
                               **timeout)
  elif int(os.environ.get("SLURM_NTASKS", "1")) > 1 or "," in os.environ.get(
      "TPU_WORKER_HOSTNAMES", ""):
    jax.distributed.initialize(**timeout)  # JAX reads the cluster from the environment
  else:
    return
  # A process of a multi-process job dispatches its programs asynchronously, as JAX does by
  # default: run inline (`platform.INLINE_DISPATCH`), the step of two CPU processes sharing
  # a loaded machine took minutes (the SIGTERM test of tests/test_parallel.py, 259 s
  # instead of 30-44 s). Set before anything starts the backend.
  from cnn_jax import platform
  platform.set_inline_dispatch(False)
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())


BARRIER_TIMEOUT_S = 1800


def barrier(name: str, timeout_s: float = BARRIER_TIMEOUT_S) -> None:
  """Blocks until every process of a multi-process job reaches `name`; no-op for one."""
  if jax.process_count() > 1:
    from jax._src import distributed  # the coordination-service client (no public handle)
    distributed.global_state.client.wait_at_barrier(name, int(timeout_s * 1000))


class CompiledTogether:
  """A jitted function whose first call per input signature compiles ahead of time and
  then waits for every process before it runs.

  Processes compile at different speeds (a loaded host can lag by a minute), and the first
  cross-process collective opens its gloo/NCCL connections with a short deadline (30 s for
  gloo on CPU), so a process that finishes compiling early would time out waiting for the
  slow one. Compiling first and meeting at a barrier removes that race. One process: the
  plain jitted function is used and nothing changes.
  """

  _instances = itertools.count()  # every process builds them in the same order

  def __init__(self, jitted, name: str):
    self._jitted, self._compiled = jitted, {}
    self._name = f"{name}{next(self._instances)}"

  def __call__(self, *args):
    key = tuple((x.shape, str(x.dtype)) for x in jax.tree.leaves(args))
    fn = self._compiled.get(key)
    if fn is None:
      fn = self._jitted.lower(*args).compile()
      barrier(f"cnn_jax:{self._name}:{len(self._compiled)}")
      self._compiled[key] = fn
    return fn(*args)


def compile_together(jitted, name: str):
  """`jitted` itself for one process; a `CompiledTogether` for a multi-process job."""
  return CompiledTogether(jitted, name) if jax.process_count() > 1 else jitted


def make_mesh(devices=None) -> Mesh:
  devices = np.asarray(devices if devices is not None else jax.devices())
  return Mesh(devices.reshape(-1), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


# Arrays with fewer elements stay replicated under FSDP (biases, BatchNorm, small kernels).
FSDP_MIN_SIZE = 2**18


def fsdp_sharding(mesh: Mesh, shape: tuple[int, ...],
                  min_size: int = FSDP_MIN_SIZE) -> NamedSharding:
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
                    min_size: int = FSDP_MIN_SIZE):
  """Shardings for a pytree of abstract arrays: replicated, or FSDP for big leaves."""
  if not shard_params:
    return jax.tree.map(lambda _: replicated(mesh), abstract_state)
  return jax.tree.map(lambda x: fsdp_sharding(mesh, tuple(x.shape), min_size), abstract_state)


def global_batch(mesh: Mesh, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
  """Builds global arrays, sharded over 'data', from this process's slice of the batch."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v)
          for k, v in local_batch.items()}
