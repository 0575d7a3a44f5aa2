"""The `.pth` opcode scan: pickled code is refused without unpickling, with or without
torch; a plain state dict's imports pass."""

import os
import pickle
import struct
import zipfile

import pytest

from cnn_jax.convert.safe_pickle import check_weights_pickle


class _RunsCode:
  """Unpickling this calls os.system: what a malicious weights file does."""

  def __reduce__(self):
    return (os.system, ("echo pwned",))


def _short_str(s: str) -> bytes:  # SHORT_BINUNICODE
  return b"\x8c" + struct.pack("<B", len(s)) + s.encode()


def _stack_global_via_memo(module: str, name: str) -> bytes:
  """Protocol 4: the two names memoised, pushed again with BINGET, then STACK_GLOBAL (the
  form pickle itself writes when a name repeats)."""
  return (b"\x80\x04" + _short_str(module) + b"\x94" + _short_str(name) + b"\x94"
          + b"h\x00h\x01" + b"\x93" + b".")


def _write(path, data: bytes, zipped: bool = False):
  if zipped:  # the PyTorch >= 1.6 layout: archive/data.pkl inside a zip
    with zipfile.ZipFile(path, "w") as z:
      z.writestr("archive/data.pkl", data)
      z.writestr("archive/version", "3\n")
  else:
    path.write_bytes(data)
  return str(path)


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("zipped", [False, True])
def test_pickled_code_is_refused_at_every_protocol(tmp_path, protocol, zipped):
  data = pickle.dumps({"conv1.weight": _RunsCode()}, protocol=protocol)
  path = _write(tmp_path / "evil.pth", data, zipped)
  with pytest.raises(ValueError, match=r"would import (posix|os|nt)\.system.*refused"):
    check_weights_pickle(path)


def test_names_pushed_from_the_memo_are_checked(tmp_path):
  bad = _write(tmp_path / "bad.pth", _stack_global_via_memo("os", "system"))
  with pytest.raises(ValueError, match="os.system"):
    check_weights_pickle(bad)
  good = _write(tmp_path / "good.pth", _stack_global_via_memo("torch._utils",
                                                              "_rebuild_tensor_v2"))
  check_weights_pickle(good)


def test_a_state_dicts_own_imports_pass(tmp_path):
  # What torch.save writes for an OrderedDict of float tensors (protocol 2, GLOBAL ops).
  data = (b"\x80\x02" + b"ccollections\nOrderedDict\nq\x00)Rq\x01"
          + b"ctorch._utils\n_rebuild_tensor_v2\nq\x02" + b"ctorch\nFloatStorage\nq\x03"
          + b"ctorch\nSize\nq\x04" + b".")
  check_weights_pickle(_write(tmp_path / "sd.pth", data, zipped=True))


def test_not_a_pickle_is_one_line(tmp_path):
  path = _write(tmp_path / "junk.pth", b"\xff\xfe not a pickle at all")
  with pytest.raises(ValueError, match="is not a PyTorch weights file"):
    check_weights_pickle(path)


def test_a_real_torch_state_dict_passes(tmp_path):
  torch = pytest.importorskip("torch")
  path = str(tmp_path / "real.pth")
  torch.save({"conv.weight": torch.zeros(2, 3), "bn.num_batches_tracked": torch.tensor(1),
              "half": torch.zeros(2, dtype=torch.bfloat16)}, path)
  check_weights_pickle(path)
  torch.save({"w": torch.zeros(2)}, path, _use_new_zipfile_serialization=False)
  check_weights_pickle(path)
