"""Read TensorFlow checkpoints (tensor bundles) and SavedModel variables without TensorFlow.

A TF checkpoint ``PREFIX`` is two kinds of file (the format every ``tf.train.Checkpoint``,
``tf.compat.v1.train.Saver`` and SavedModel ``variables/`` directory uses):

- ``PREFIX.index``: a LevelDB-style sorted table (SSTable): data blocks of prefix-compressed
  ``key -> value`` entries with restart points, an index block pointing at them, and a 48-byte footer
  (two varint block handles, padding, magic ``0xdb4775248b80fb57``); each block is followed by a
  1-byte compression type (bundles are written uncompressed) and a CRC32C. The value of key ``""``
  is a ``BundleHeaderProto`` (number of shards, endianness); every other key is a tensor name whose
  value is a ``BundleEntryProto`` (dtype, shape, shard, offset, size).
- ``PREFIX.data-SSSSS-of-NNNNN``: the tensors' raw little-endian bytes at those offsets.

Object-based checkpoints (TF2, SavedModels written by ``tf.saved_model.save``) key tensors by their
path in the object graph (``model/layer/.ATTRIBUTES/VARIABLE_VALUE``) and keep the variable's own name
in the serialized ``TrackableObjectGraph`` under ``_CHECKPOINTABLE_OBJECT_GRAPH``; :func:`read_tf_variables`
returns the variables' own names when they are known, so TF1 and TF2 checkpoints of one network read
the same. The few protobuf messages needed are decoded here by field number (the wire format is
stable); reading needs numpy only. TensorFlow (``pip install versanet[tf]``) is needed only to WRITE
such files, e.g. for the tests' fixtures.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_BYTES = 48
BLOCK_TRAILER_BYTES = 5
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
VARIABLE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"

# tensorflow/core/framework/types.proto DataType -> numpy dtype (little-endian)
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
    6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"), 17: np.dtype("<u2"), 19: np.dtype("<f2"),
    22: np.dtype("<u4"), 23: np.dtype("<u8"),
}
_DT_STRING = 7
_DT_BFLOAT16 = 14


class TFCheckpointError(ValueError):
    """A TF checkpoint that is missing or cannot be parsed; the message names the file."""


# ----------------------------------------------------------------------------- protobuf wire format
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Decode one protobuf message into ``(field number, value)``: ints for varint/fixed, bytes for length-delimited."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((number, value))
    return out


@dataclass
class BundleEntry:
    """Where one tensor lives (``BundleEntryProto``)."""

    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    sliced: bool = False


def _entry(value: bytes) -> BundleEntry:
    dtype, shape, shard, offset, size, sliced = 0, (), 0, 0, 0, False
    for number, field in _fields(value):
        if number == 1:
            dtype = int(field)  # type: ignore[arg-type]
        elif number == 2:  # TensorShapeProto: repeated Dim dim = 2 {int64 size = 1}
            dims = [dict(_fields(d)).get(1, 0) for n, d in _fields(field) if n == 2]  # type: ignore[arg-type]
            shape = tuple(int(d) for d in dims)  # type: ignore[arg-type]
        elif number == 3:
            shard = int(field)  # type: ignore[arg-type]
        elif number == 4:
            offset = int(field)  # type: ignore[arg-type]
        elif number == 5:
            size = int(field)  # type: ignore[arg-type]
        elif number == 7:
            sliced = True
    return BundleEntry(dtype, shape, shard, offset, size, sliced)


# ----------------------------------------------------------------------------- the SSTable
def _block_handle(buf: bytes, pos: int) -> tuple[int, int, int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return offset, size, pos


def _block_entries(data: bytes, offset: int, size: int, path: Path) -> list[tuple[bytes, bytes]]:
    block = data[offset : offset + size]
    if len(block) != size or data[offset + size : offset + size + 1] not in (b"\x00",):
        raise TFCheckpointError(f"{path}: a table block is truncated or compressed (only uncompressed bundles are read)")
    num_restarts = struct.unpack_from("<I", block, size - 4)[0]
    end = size - 4 - 4 * num_restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def read_index(index_path: str | Path) -> dict[str, BundleEntry | dict[int, int]]:
    """``PREFIX.index`` -> ``{"": header fields, tensor name: BundleEntry}``."""
    path = Path(index_path)
    if not path.is_file():
        raise TFCheckpointError(f"TF checkpoint index not found: {path}")
    data = path.read_bytes()
    try:
        if len(data) < FOOTER_BYTES or struct.unpack_from("<Q", data, len(data) - 8)[0] != TABLE_MAGIC:
            raise TFCheckpointError(f"{path} is not a TF checkpoint index (no SSTable magic number at its end)")
        footer = data[-FOOTER_BYTES:]
        _, _, pos = _block_handle(footer, 0)  # metaindex (unused)
        index_offset, index_size, _ = _block_handle(footer, pos)
        out: dict[str, BundleEntry | dict[int, int]] = {}
        for _, handle in _block_entries(data, index_offset, index_size, path):
            offset, size, _ = _block_handle(handle, 0)
            for key, value in _block_entries(data, offset, size, path):
                name = key.decode("utf-8")
                out[name] = {n: int(v) for n, v in _fields(value) if isinstance(v, int)} if name == "" else _entry(value)
    except (ValueError, struct.error, IndexError) as err:
        if isinstance(err, TFCheckpointError):
            raise
        raise TFCheckpointError(f"{path}: cannot parse the TF checkpoint index: {err}") from None
    return out


# ----------------------------------------------------------------------------- tensors
def _resolve_prefix(path: str | Path) -> Path:
    """A checkpoint prefix from a prefix, its ``.index`` file, a SavedModel directory or a directory holding one checkpoint."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "variables" / "variables", path / "variables"):
            if candidate.with_name(candidate.name + ".index").is_file():
                return candidate
        indexes = sorted(path.glob("*.index"))
        if len(indexes) == 1:  # a training run's folder with one checkpoint (ckpt-500000.index)
            return indexes[0].with_suffix("")
        raise TFCheckpointError(
            f"{path} is a directory without variables/variables.index (not a SavedModel) and with {len(indexes)} "
            "checkpoint .index files (give the one to read)"
        )
    if path.suffix == ".index":
        return path.with_suffix("")
    if path.with_name(path.name + ".index").is_file():
        return path
    raise TFCheckpointError(f"TF checkpoint not found: {path} (give a SavedModel directory, a checkpoint prefix or its .index file)")


def _decode(raw: bytes, entry: BundleEntry, name: str, path: Path) -> np.ndarray:
    if entry.dtype == _DT_STRING:
        count = int(np.prod(entry.shape)) if entry.shape else 1
        lengths, pos = [], 0
        for _ in range(count):
            n, pos = _varint(raw, pos)
            lengths.append(n)
        pos += 4  # CRC32C of the lengths
        items = []
        for n in lengths:
            items.append(raw[pos : pos + n])
            pos += n
        return np.array(items, dtype=object).reshape(entry.shape)
    if entry.dtype == _DT_BFLOAT16:
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(entry.shape)
    dtype = _DTYPES.get(entry.dtype)
    if dtype is None:
        raise TFCheckpointError(f"{path}: tensor {name!r} has TF dtype {entry.dtype}, which versanet does not read")
    array = np.frombuffer(raw, dtype=dtype)
    if array.size != (int(np.prod(entry.shape)) if entry.shape else 1):
        raise TFCheckpointError(f"{path}: tensor {name!r} holds {array.size} values for shape {entry.shape}")
    return array.reshape(entry.shape).copy()


def read_tf_checkpoint(path: str | Path, keep_optimizer_slots: bool = False) -> dict[str, np.ndarray]:
    """Every tensor of a TF checkpoint, by checkpoint key (a SavedModel dir, a prefix, or ``PREFIX.index``)."""
    prefix = _resolve_prefix(path)
    index = read_index(prefix.with_name(prefix.name + ".index"))
    header = index.pop("", {})
    num_shards = int(header.get(1, 1)) if isinstance(header, dict) else 1
    if isinstance(header, dict) and header.get(2, 0) != 0:
        raise TFCheckpointError(f"{prefix}: big-endian TF checkpoints are not supported")
    out: dict[str, np.ndarray] = {}
    # data files are mapped, not read: they also hold the optimizer's slots (a VATT-LBS checkpoint is
    # several GB, three quarters of it Adam moments), and only the tensors asked for are copied out
    with contextlib.ExitStack() as stack:
        shards: dict[int, bytes | mmap.mmap] = {}
        for name, entry in index.items():
            assert isinstance(entry, BundleEntry)
            if entry.sliced:
                raise TFCheckpointError(f"{prefix}: tensor {name!r} is stored in slices (partitioned variables are not supported)")
            if not keep_optimizer_slots and "/.OPTIMIZER_SLOT/" in name:
                continue
            if entry.shard not in shards:
                shard = prefix.with_name(f"{prefix.name}.data-{entry.shard:05d}-of-{num_shards:05d}")
                if not shard.is_file():
                    raise TFCheckpointError(f"{prefix}: data file {shard.name} is missing")
                handle = stack.enter_context(shard.open("rb"))
                empty = shard.stat().st_size == 0  # mmap refuses empty files
                shards[entry.shard] = b"" if empty else stack.enter_context(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))
            raw = shards[entry.shard][entry.offset : entry.offset + entry.size]
            if len(raw) != entry.size:
                raise TFCheckpointError(f"{prefix}: tensor {name!r} runs past the end of its data file (truncated download?)")
            out[name] = _decode(raw, entry, name, prefix)
    return out


def object_graph_names(serialized: bytes) -> dict[str, str]:
    """``TrackableObjectGraph`` -> ``{checkpoint key: the variable's own name}`` (``:0`` stripped).

    ``TrackableObjectGraph {repeated TrackableObject nodes = 1}``, ``TrackableObject {repeated
    SerializedTensor attributes = 2}``, ``SerializedTensor {name = 1, full_name = 2, checkpoint_key = 3}``.
    """
    names: dict[str, str] = {}
    for number, node in _fields(serialized):
        if number != 1:
            continue
        for field, attribute in _fields(node):  # type: ignore[arg-type]
            if field != 2:
                continue
            parts = {n: v for n, v in _fields(attribute) if isinstance(v, bytes)}  # type: ignore[arg-type]
            full, key = parts.get(2, b"").decode("utf-8"), parts.get(3, b"").decode("utf-8")
            if key and full:
                names[key] = full.removesuffix(":0")
    return names


def read_tf_variables(path: str | Path) -> dict[str, np.ndarray]:
    """The variables of a TF checkpoint or SavedModel by NAME (see the module docstring); bookkeeping tensors dropped."""
    tensors = read_tf_checkpoint(path)
    graph = tensors.pop(OBJECT_GRAPH_KEY, None)
    names = object_graph_names(bytes(graph.item())) if graph is not None else {}
    out: dict[str, np.ndarray] = {}
    for key, value in tensors.items():
        if value.dtype == object or key in ("global_step", "save_counter") or key.startswith("save_counter/"):
            continue
        name = names.get(key)
        if name is None:
            name = key.removesuffix(VARIABLE_SUFFIX)
        if name in out:
            raise TFCheckpointError(f"{path}: two tensors are named {name!r}")
        out[name] = value
    return out
