"""Refuses a PyTorch weights file whose pickle would import anything but tensor rebuilders.

A `.pth` file is a pickle (inside a zip archive since PyTorch 1.6, or bare in the legacy
format), and unpickling can call any importable function. `torch.load(weights_only=True)`
already refuses such files, but only where torch is installed; this scan reads the opcodes
without unpickling (`pickletools.genops`), so a malicious file is refused the same way
with or without torch, before any loader sees it. It accepts the globals a plain state
dict needs (torch's tensor/parameter rebuilders, storages, dtypes, `torch.Size`,
`collections.OrderedDict`) and nothing else.
"""

from __future__ import annotations

import io
import pickletools
import zipfile

_TORCH_NAMES = {
    "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
    "_rebuild_parameter_with_state", "_rebuild_from_type_v2", "_rebuild_qtensor",
    "_rebuild_sparse_tensor", "_rebuild_device_tensor_from_numpy", "Size", "device",
    "UntypedStorage", "TypedStorage", "_utils", "Tensor",
}
_OTHER_ALLOWED = {("collections", "OrderedDict"), ("_codecs", "encode"),
                  ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice")}
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
               "BINSTRING", "STRING"}


def _allowed(module: str, name: str) -> bool:
  if (module, name) in _OTHER_ALLOWED:
    return True
  if module == "torch" or module.startswith("torch."):
    # Storages (FloatStorage, ...), dtypes (float32, bfloat16, ...) and the rebuilders.
    return name in _TORCH_NAMES or name.endswith("Storage") or name in _TORCH_DTYPES
  return False


_TORCH_DTYPES = {
    "float16", "float32", "float64", "bfloat16", "half", "float", "double", "uint8", "int8",
    "int16", "int32", "int64", "short", "int", "long", "bool", "complex64", "complex128",
    "float8_e4m3fn", "float8_e5m2", "uint16", "uint32", "uint64",
}


_LEGACY_PICKLES = 5


def _pickles(path: str) -> list[bytes]:
  """The pickle streams of a `.pth`: the zip archive's `*.pkl` members, or the file."""
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as z:
      return [z.read(n) for n in z.namelist() if n.endswith(".pkl")]
  with open(path, "rb") as f:
    return [f.read()]


def _globals(data: bytes):
  """Yields (module, name) for every GLOBAL / STACK_GLOBAL / INST in a pickle stream. The
  legacy (non-zip) format is five pickles back to back (magic number, protocol, system
  info, the object, storage keys) followed by raw tensor bytes: the five are read."""
  stream = io.BytesIO(data)
  for _ in range(_LEGACY_PICKLES):
    if stream.tell() >= len(data):
      break
    memo, pushed = {}, []  # pushed: the values of recent pushes (strings, else None)
    for op, arg, _ in pickletools.genops(stream):
      name = op.name
      if name in ("GLOBAL", "INST"):
        module, _, attr = arg.partition(" ")
        yield module, attr
      elif name == "STACK_GLOBAL":
        yield tuple(pushed[-2:]) if len(pushed) >= 2 else (None, None)
      elif name in _STRING_OPS:
        pushed.append(arg if isinstance(arg, str) else None)
      elif name == "MEMOIZE":
        memo[len(memo)] = pushed[-1] if pushed else None
      elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
        memo[arg] = pushed[-1] if pushed else None
      elif name in ("GET", "BINGET", "LONG_BINGET"):
        pushed.append(memo.get(arg))
      elif name == "STOP":
        break
      else:
        pushed.append(None)


def check_weights_pickle(path: str) -> None:
  """Raises ValueError (one line) if the `.pth` at `path` would import anything that is not
  part of a plain state dict of tensors; reads opcodes only, never unpickles."""
  for data in _pickles(path):
    try:
      found = list(_globals(data))
    except Exception as e:  # noqa: BLE001 — not a pickle stream at all
      raise ValueError(f"{path} is not a PyTorch weights file ({type(e).__name__}: {e}); "
                       "download or save it again") from e
    for module, name in found:
      if module is None or name is None:
        raise ValueError(f"{path}: its pickle imports a name that cannot be read without "
                         "running it; refused (save the state dict as .safetensors)")
      if not _allowed(module, name):
        raise ValueError(f"{path}: its pickle would import {module}.{name}, which a plain "
                         "state dict never does; refused without loading it (save the "
                         "state dict as .safetensors, or load only files you trust)")
