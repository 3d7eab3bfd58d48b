"""A small safetensors reader/writer on plain torch + numpy (no `safetensors` package).

File layout (https://github.com/huggingface/safetensors, "Format"):
  8 bytes   little-endian u64 N, the header length
  N bytes   JSON: {name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
            plus an optional "__metadata__": {str: str}; offsets are relative to the data start
  rest      the tensors' raw little-endian bytes, back to back

The writer sorts tensors by name, packs them without gaps, and pads the header with spaces to
a multiple of 8 bytes (as the reference implementation does), so output is byte-deterministic.
"""
import json
import os
import sys

import numpy as np
import torch

# safetensors dtype name -> (torch dtype, numpy dtype used for the raw bytes)
# BF16 has no numpy type: its bytes travel as int16 and are reinterpreted with Tensor.view.
_DTYPES = {
    "F64": (torch.float64, np.float64),
    "F32": (torch.float32, np.float32),
    "F16": (torch.float16, np.float16),
    "BF16": (torch.bfloat16, np.int16),
    "I32": (torch.int32, np.int32),
    "I64": (torch.int64, np.int64),
}
_NAME_OF = {t: name for name, (t, _) in _DTYPES.items()}

if sys.byteorder != "little":
    raise RuntimeError("st_io: safetensors data is little-endian; this host is big-endian")


def dtype_name(t):
    """The safetensors spelling of a torch dtype ("F32", "BF16", ...)."""
    if t not in _NAME_OF:
        raise ValueError(f"st_io: dtype {t} is not supported (supported: {sorted(_DTYPES)})")
    return _NAME_OF[t]


def _raw_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)  # same bits, a dtype numpy knows
    return t.numpy().tobytes()


def tensor_nbytes(t):
    return t.numel() * t.element_size()


def save(path, tensors, metadata=None):
    """Write {name: tensor} (any supported dtype, any shape incl. []) and optional str->str metadata.

    Writes to `path.tmp` and renames, so a reader never sees a half-written file.
    """
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"st_io: metadata must be str -> str, got {k!r}: {type(v).__name__}")
        header["__metadata__"] = dict(metadata)
    blobs = []
    offset = 0
    for name in sorted(tensors):
        if name == "__metadata__":
            raise ValueError("st_io: '__metadata__' is reserved and cannot name a tensor")
        t = tensors[name]
        raw = _raw_bytes(t)
        header[name] = {
            "dtype": dtype_name(t.dtype),
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


def load(path):
    """Read a safetensors file: returns ({name: tensor}, metadata dict or {}).

    Checks what a careless reader would miss: header length in range, known dtypes, byte
    sizes that match the shapes, offsets inside the data section and not overlapping.
    """
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"st_io: {path}: file shorter than the 8-byte header length")
    n = int.from_bytes(blob[:8], "little")
    if n > len(blob) - 8:
        raise ValueError(f"st_io: {path}: header length {n} exceeds the file size {len(blob)}")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    spans = []
    for name, info in header.items():
        if info["dtype"] not in _DTYPES:
            raise ValueError(f"st_io: {path}: tensor {name}: unsupported dtype {info['dtype']}")
        tdtype, npdtype = _DTYPES[info["dtype"]]
        shape = [int(s) for s in info["shape"]]
        begin, end = (int(x) for x in info["data_offsets"])
        count = int(np.prod(shape)) if shape else 1
        width = np.dtype(npdtype).itemsize
        if not 0 <= begin <= end <= len(data) or end - begin != count * width:
            raise ValueError(f"st_io: {path}: tensor {name}: data_offsets {[begin, end]} do not fit "
                             f"shape {shape} x {width} bytes in a {len(data)}-byte data section")
        spans.append((begin, end, name))
        arr = np.frombuffer(data[begin:end], dtype=npdtype, count=count).copy()
        t = torch.from_numpy(arr)
        if tdtype == torch.bfloat16:
            t = t.view(torch.bfloat16)
        tensors[name] = t.reshape(shape)
    spans.sort()
    for (b0, e0, n0), (b1, _, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise ValueError(f"st_io: {path}: tensors {n0} and {n1} overlap")
    return tensors, metadata
