"""Checkpoints: safetensors files with rnnlab's JSON metadata. Never pickle.

File layout (standard safetensors, loadable with `safetensors.numpy.load_file`): an 8-byte little-endian header
length, a JSON header (space-padded to a multiple of 8 bytes) mapping each tensor name to its dtype, shape and
data_offsets, then the raw little-endian tensor bytes. `__metadata__["rnnlab"]` holds a JSON object
{"format": FORMAT, "version": VERSION, "sha256": ..., "meta": <caller's dict>}.

The checksum is SHA-256 over the tensors in sorted-name order; for each tensor it hashes the UTF-8 name, b"\\0",
the safetensors dtype string (e.g. "F32"), b"\\0", the shape as compact JSON (e.g. "[2,3]"), b"\\0", the data length
as 8 little-endian bytes, then the raw C-contiguous little-endian data.

`load` parses the file itself (json + np.frombuffer) and validates everything before trusting it.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from rnnlab.errors import UserError

FORMAT = "rnnlab-checkpoint"
VERSION = 1
MAX_HEADER = 100 * 1000 * 1000
DTYPES = {"BOOL": "|b1", "U8": "|u1", "I8": "|i1", "U16": "<u2", "I16": "<i2", "U32": "<u4", "I32": "<i4",
          "U64": "<u8", "I64": "<i8", "F16": "<f2", "F32": "<f4", "F64": "<f8"}
_NAMES = {np.dtype(v): k for k, v in DTYPES.items()}
_FIX = "use another checkpoint (e.g. best.safetensors or latest.safetensors of the run) or retrain"


def _digest(items) -> str:
    """items: (name, dtype string, shape, bytes-like) in any order."""
    h = hashlib.sha256()
    for name, dt, shape, data in sorted(items, key=lambda t: t[0]):
        h.update(name.encode("utf-8") + b"\0" + dt.encode() + b"\0"
                 + json.dumps(list(shape), separators=(",", ":")).encode() + b"\0"
                 + len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _write_file(f, header: bytes, arrays):
    """Write the safetensors payload to the open file f (separate so tests can make it fail)."""
    f.write(len(header).to_bytes(8, "little"))
    f.write(header)
    for a in arrays:
        f.write(memoryview(a.reshape(-1)).cast("B"))


def save(path, tensors: dict, meta: dict):
    """Atomically write tensors (dict of name -> numpy array) and a JSON-serialisable meta dict to path."""
    if not isinstance(meta, dict):
        raise TypeError("meta must be a dict")
    items, arrays, header, pos = [], [], {}, 0
    # Largest items first keeps every tensor aligned to its itemsize (as the safetensors writer does).
    for name in sorted(tensors, key=lambda n: (-np.asarray(tensors[n]).dtype.itemsize, n)):
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"bad tensor name {name!r}")
        a = np.asarray(tensors[name])
        dt = _NAMES.get(a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype)
        if dt is None:
            raise TypeError(f"tensor {name!r}: dtype {a.dtype} cannot be stored in a checkpoint")
        a = np.asarray(a, dtype=DTYPES[dt], order="C")  # keeps 0-d arrays 0-d
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [pos, pos + a.nbytes]}
        pos += a.nbytes
        items.append((name, dt, a.shape, memoryview(a.reshape(-1)).cast("B")))
        arrays.append(a)
    info = {"format": FORMAT, "version": VERSION, "sha256": _digest(items), "meta": meta}
    header["__metadata__"] = {"rnnlab": json.dumps(info, ensure_ascii=False)}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)

    path = Path(path)
    folder = path.parent
    tmp = folder / f".{path.name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            _write_file(f, raw, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise UserError(f"cannot write checkpoint '{path}': {e.strerror or e}; free disk space or choose a "
                        "writable output folder") from None
    try:  # make the rename itself durable; some filesystems cannot fsync a folder, which is harmless
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _sniff(data: bytes):
    if data[:4] == b"PK\x03\x04":
        return "looks like a zip archive such as a PyTorch .pt file"
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return "looks like a PyTorch/pickle file"
    if data[:6] == b"\x93NUMPY":
        return "looks like a NumPy .npy file"
    return None


def _no_dupes(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r}")
        d[k] = v
    return d


def _read(p: Path) -> bytearray:
    """The whole file at p (a bytearray, so that tensors can be views into it without a copy)."""
    if not p.exists():
        raise UserError(f"checkpoint '{p}' does not exist; check the path (a run directory or a .safetensors file)")
    if p.is_dir():
        raise UserError(f"checkpoint '{p}' is a directory; pass a .safetensors file, or resolve the run directory")
    try:
        with open(p, "rb") as f:
            data = bytearray(os.fstat(f.fileno()).st_size)
            n = f.readinto(data)
            del data[n:]
    except OSError as e:
        raise UserError(f"cannot read checkpoint '{p}': {e.strerror or e}; check the path and permissions") from None
    return data


def _header(p: Path, data: bytearray, bad) -> tuple:
    """(tensor entries: name -> {dtype, shape, data_offsets}, header length) of the file's safetensors header,
    which must be a JSON object without duplicate keys of at most MAX_HEADER bytes inside the file."""
    n = len(data)
    hlen = int.from_bytes(data[:8], "little")
    if data[8:9] != b"{" or n < 8 or hlen > MAX_HEADER or hlen > n - 8:
        kind = _sniff(bytes(data[:8]))
        if kind:
            raise UserError(f"'{p}' is not an rnnlab checkpoint ({kind}); rnnlab never loads pickles, "
                            "so pass a .safetensors checkpoint written by rnnlab")
        if n < 8:
            raise bad(f"the file is only {n} bytes long (truncated or empty)")
        if hlen > MAX_HEADER:
            raise bad(f"its header claims {hlen} bytes (more than the {MAX_HEADER} byte limit)")
        if hlen > n - 8:
            raise bad(f"its header claims {hlen} bytes but only {n - 8} follow (truncated)")
        raise bad("it does not start with a safetensors JSON header")
    try:
        header = json.loads(bytes(data[8:8 + hlen]).decode("utf-8"), object_pairs_hook=_no_dupes)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise bad(f"its header is not valid JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    return header, hlen


def _info(p: Path, md, bad) -> dict:
    """The rnnlab metadata {format, version, sha256, meta} from the header's __metadata__, checked; a newer format
    version asks for a newer rnnlab."""
    if not isinstance(md, dict) or not isinstance(md.get("rnnlab"), str):
        raise bad("it has no rnnlab metadata (a safetensors file from another tool?)")
    try:
        info = json.loads(md["rnnlab"])
    except ValueError:
        raise bad("its rnnlab metadata is not valid JSON") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise bad(f"its metadata does not say format {FORMAT!r}")
    version = info.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise bad(f"its format version {version!r} is invalid")
    if version > VERSION:
        raise UserError(f"checkpoint '{p}' was written by a newer rnnlab (format version {version}, this rnnlab "
                        f"reads up to {VERSION}); upgrade rnnlab to load it")
    if not isinstance(info.get("sha256"), str) or not isinstance(info.get("meta"), dict):
        raise bad("its metadata lacks the sha256 checksum or the meta dict")
    return info


def _span(name, e, size, bad) -> tuple:
    """(numpy dtype, element count, begin, end) of one header entry, checked against the `size` data bytes."""
    if not (isinstance(e, dict) and isinstance(e.get("dtype"), str) and isinstance(e.get("shape"), list)
            and isinstance(e.get("data_offsets"), list) and len(e["data_offsets"]) == 2
            and all(type(v) is int and v >= 0 for v in e["shape"] + e["data_offsets"])):
        raise bad(f"tensor {name!r} has a malformed header entry")
    if e["dtype"] not in DTYPES:
        raise bad(f"tensor {name!r} has unsupported dtype {e['dtype']!r}")
    dt = np.dtype(DTYPES[e["dtype"]])
    b, end = e["data_offsets"]
    count = int(np.prod(e["shape"], dtype=object))
    if end < b or count * dt.itemsize != end - b:
        raise bad(f"tensor {name!r}: shape {e['shape']} x {dt.itemsize} bytes does not match its byte range "
                  f"[{b}, {end}]")
    if end > size:
        raise bad(f"tensor {name!r} ends at byte {end} of the data but the file holds only {size} (truncated)")
    return dt, count, b, end


def _tensors(header: dict, data: bytearray, start: int, bad) -> tuple:
    """(tensors: name -> array viewing `data` (copied when misaligned), checksum items) of the tensor entries;
    the data after byte `start` must be exactly the tensors' byte ranges, back to back."""
    size = len(data) - start
    spans, items, tensors = [], [], {}
    for name, e in header.items():
        dt, count, b, end = _span(name, e, size, bad)
        spans.append((b, end, name))
        items.append((name, e["dtype"], e["shape"], memoryview(data)[start + b:start + end]))
        a = np.frombuffer(data, dtype=dt, count=count, offset=start + b) if count else np.empty(0, dt)
        a = a.reshape(e["shape"])
        tensors[name] = a if a.flags.aligned else a.copy()
    pos = 0
    for b, end, name in sorted(spans):
        if b != pos:
            raise bad(f"tensor {name!r} starts at byte {b}, expected {pos} (tensor data must be contiguous)")
        pos = end
    if pos != size:
        raise bad(f"{size - pos} bytes follow the last tensor")
    return tensors, items


def load(path):
    """Read and fully validate a checkpoint; return (tensors, meta). Any problem is a one-line UserError.

    Checked in this order: the file (exists, readable), the safetensors header (length, JSON), the rnnlab metadata
    (format, version, checksum and meta present), each tensor's entry (dtype, shape against its byte range, inside
    the file), the layout (contiguous, nothing after the last tensor), then the SHA-256 checksum."""
    p = Path(path)
    data = _read(p)

    def bad(what):
        return UserError(f"'{p}' is not a valid rnnlab checkpoint: {what}; {_FIX}")

    header, hlen = _header(p, data, bad)
    info = _info(p, header.pop("__metadata__", None), bad)
    tensors, items = _tensors(header, data, 8 + hlen, bad)
    if _digest(items) != info["sha256"]:
        raise bad("checksum mismatch, the tensor data is corrupt")
    return tensors, info["meta"]


def resolve(path_or_run_dir, which="best") -> Path:
    """A checkpoint file path: a run directory gives <dir>/<which>.safetensors; a file path is used as is."""
    if which not in ("best", "latest"):
        raise UserError(f"unknown checkpoint choice {which!r}; use 'best' or 'latest'")
    p = Path(path_or_run_dir)
    if p.is_dir():
        f = p / f"{which}.safetensors"
        if f.is_file():
            return f
        found = sorted(q.name for q in p.glob("*.safetensors"))
        there = f"it has {', '.join(found)}" if found else "it has no checkpoints"
        raise UserError(f"run directory '{p}' has no {which}.safetensors ({there}); pass a checkpoint file, "
                        "another run directory, or train first")
    if p.is_file():
        return p
    raise UserError(f"no checkpoint at '{p}'; pass a run directory (with best.safetensors / latest.safetensors) "
                    "or a .safetensors file")
