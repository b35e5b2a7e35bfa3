import errno
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file

from rnnlab import checkpoint
from rnnlab.checkpoint import FORMAT, VERSION, load, resolve, save
from rnnlab.errors import UserError

META = {"step": 1200, "config": {"hidden": 64, "lr": 0.002, "name": "lstm"}, "vocab": ["a", "é"], "best": None}


def tensors():
    rng = np.random.default_rng(0)
    return {
        "w_xh": rng.standard_normal((3, 5)).astype(np.float32),
        "w_hh": rng.standard_normal((5, 5)),  # float64
        "b": np.array([1.5, -0.0, np.inf, np.nan], dtype=np.float32),
        "step": np.array(42, dtype=np.int64),  # 0-d
        "ids": np.arange(7, dtype=np.uint8),  # odd byte length
        "half": np.arange(3, dtype=np.float16),
        "mask": np.array([True, False, True]),
        "i32": np.arange(-3, 3, dtype=np.int32).reshape(2, 3),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "strided": np.arange(20.0).reshape(4, 5)[:, ::2],  # not contiguous
        "big_endian": np.arange(4, dtype=">i4"),
    }


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype.newbyteorder("=") == b.dtype.newbyteorder("=") and \
        np.ascontiguousarray(a).astype(a.dtype.newbyteorder("=")).tobytes() == b.tobytes()


def one_line(e):
    msg = str(e.value)
    assert msg and "\n" not in msg
    return msg


@pytest.fixture
def ckpt(tmp_path):
    p = tmp_path / "model.safetensors"
    save(p, tensors(), META)
    return p


def test_round_trip_bitwise(ckpt):
    got, meta = load(ckpt)
    want = tensors()
    assert set(got) == set(want) and meta == META
    for k in want:
        assert same(want[k], got[k]), k
    got["w_xh"][0, 0] = 1.0  # loaded arrays are writable


def test_loads_with_safetensors(ckpt):
    got = load_file(str(ckpt))
    for k, a in tensors().items():
        assert same(a, got[k]), k
    from safetensors import safe_open
    with safe_open(str(ckpt), "np") as f:
        info = json.loads(f.metadata()["rnnlab"])
    assert info["format"] == FORMAT and info["version"] == VERSION and info["meta"] == META
    assert len(info["sha256"]) == 64


def test_tensors_are_aligned(ckpt):
    data = ckpt.read_bytes()
    hlen = int.from_bytes(data[:8], "little")
    assert hlen % 8 == 0
    header = json.loads(data[8:8 + hlen])
    for name, e in header.items():
        if name != "__metadata__":
            item = np.dtype(checkpoint.DTYPES[e["dtype"]]).itemsize
            assert (8 + hlen + e["data_offsets"][0]) % item == 0, name


def test_overwrite_leaves_no_temp(ckpt):
    save(ckpt, {"x": np.ones(2)}, {"n": 2})
    assert load(ckpt)[1] == {"n": 2}
    assert [p.name for p in ckpt.parent.iterdir()] == ["model.safetensors"]


def fail_enospc(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("target", ["os.replace", "rnnlab.checkpoint._write_file"])
def test_atomic_failure_keeps_previous(ckpt, monkeypatch, target):
    before = ckpt.read_bytes()
    if target == "rnnlab.checkpoint._write_file":
        def partial(f, header, arrays):  # half the payload reaches the disk, then the disk is full
            f.write(b"\0" * 100)
            fail_enospc()
        monkeypatch.setattr(target, partial)
    else:
        monkeypatch.setattr(target, fail_enospc)
    with pytest.raises(UserError) as e:
        save(ckpt, {"x": np.zeros(1000)}, {"new": True})
    msg = one_line(e)
    assert "No space left on device" in msg and str(ckpt) in msg
    assert ckpt.read_bytes() == before
    assert [p.name for p in ckpt.parent.iterdir()] == ["model.safetensors"]
    monkeypatch.undo()
    assert load(ckpt)[1] == META


def test_unwritable_folder(tmp_path):
    with pytest.raises(UserError, match="cannot write checkpoint"):
        save(tmp_path / "no" / "such" / "dir" / "m.safetensors", {"x": np.ones(1)}, {})


def test_missing_directory_and_resolve(tmp_path, ckpt):
    with pytest.raises(UserError, match="does not exist"):
        load(tmp_path / "nope.safetensors")
    with pytest.raises(UserError, match="is a directory"):
        load(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(UserError, match="no best.safetensors .it has no checkpoints"):
        resolve(run)
    save(run / "latest.safetensors", {"x": np.ones(1)}, {})
    assert resolve(run, "latest") == run / "latest.safetensors"
    with pytest.raises(UserError, match="it has latest.safetensors"):
        resolve(run, "best")
    save(run / "best.safetensors", {"x": np.ones(1)}, {})
    assert resolve(run) == run / "best.safetensors"
    assert resolve(ckpt) == ckpt
    with pytest.raises(UserError, match="no checkpoint at"):
        resolve(tmp_path / "missing")
    with pytest.raises(UserError, match="'best' or 'latest'"):
        resolve(run, "first")


def expect_bad(path, *fragments):
    with pytest.raises(UserError) as e:
        load(path)
    msg = one_line(e)
    assert str(path) in msg
    for f in fragments:
        assert f in msg, msg
    return msg


def test_truncated(ckpt, tmp_path):
    data = ckpt.read_bytes()
    for cut in (0, 5, 12, len(data) // 2, len(data) - 1):
        p = tmp_path / f"cut{cut}.safetensors"
        p.write_bytes(data[:cut])
        expect_bad(p, "truncated" if cut != 12 else "header claims")


def test_extra_trailing_bytes(ckpt):
    ckpt.write_bytes(ckpt.read_bytes() + b"\0" * 8)
    expect_bad(ckpt, "8 bytes follow the last tensor")


def test_pickle_is_never_unpickled(tmp_path):
    canary = tmp_path / "canary"

    class Evil:
        def __reduce__(self):
            return (open, (str(canary), "w"))

    payload = pickle.dumps({"state_dict": Evil()})
    for proto in (2, 4, 5):
        p = tmp_path / f"model{proto}.safetensors"
        p.write_bytes(pickle.dumps({"state_dict": Evil()}, protocol=proto))
        msg = expect_bad(p, "pickle", "never loads pickles")
        assert "not an rnnlab checkpoint" in msg
    assert not canary.exists()
    pickle.loads(payload)  # the same bytes, given to pickle, do create the file
    assert canary.exists()


def test_zip_pt_file(tmp_path):
    p = tmp_path / "model.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": [1.0, 2.0]}))
        z.writestr("archive/version", "3\n")
    expect_bad(p, "zip archive", "PyTorch")


def test_random_bytes(tmp_path):
    p = tmp_path / "noise.safetensors"
    p.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    expect_bad(p, "not a valid rnnlab checkpoint")


def test_header_claiming_10gb(tmp_path):
    p = tmp_path / "huge.safetensors"
    p.write_bytes((10 * 10**9).to_bytes(8, "little") + b'{"a": 1}')
    expect_bad(p, "header claims 10000000000 bytes", "limit")


def write_raw(path, header: dict, data: bytes, info=None):
    info = info or {"format": FORMAT, "version": VERSION, "sha256": "0" * 64, "meta": {}}
    header = dict(header, __metadata__={"rnnlab": json.dumps(info)})
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)
    return path


def test_offsets_past_end(tmp_path):
    p = write_raw(tmp_path / "x.safetensors", {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
                  b"\0" * 8)
    expect_bad(p, "'w' ends at byte 16", "only 8")


@pytest.mark.parametrize("entry,fragment", [
    ({"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}, "does not match its byte range"),
    ({"dtype": "BF16", "shape": [8], "data_offsets": [0, 16]}, "unsupported dtype 'BF16'"),
    ({"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}, "malformed"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [16]}, "malformed"),
    ({"dtype": "U8", "shape": [8], "data_offsets": [8, 16]}, "starts at byte 8, expected 0"),
])
def test_bad_tensor_entries(tmp_path, entry, fragment):
    p = write_raw(tmp_path / "x.safetensors", {"w": entry}, b"\0" * 16)
    expect_bad(p, fragment)


def test_not_json_and_no_metadata(tmp_path):
    p = tmp_path / "x.safetensors"
    p.write_bytes((10).to_bytes(8, "little") + b"{not json}")
    expect_bad(p, "not valid JSON")
    raw = b'{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
    p.write_bytes(len(raw).to_bytes(8, "little") + raw + b"\1")
    expect_bad(p, "no rnnlab metadata")
    write_raw(p, {}, b"", {"format": "something-else", "version": 1})
    expect_bad(p, "format")


def test_flipped_bit_is_caught(ckpt):
    data = bytearray(ckpt.read_bytes())
    data[-3] ^= 0x10  # inside the last tensor's bytes
    ckpt.write_bytes(bytes(data))
    expect_bad(ckpt, "checksum mismatch")


def test_future_version(ckpt):
    data = ckpt.read_bytes()
    hlen = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + hlen])
    info = json.loads(header["__metadata__"]["rnnlab"])
    info["version"] = VERSION + 1
    header["__metadata__"]["rnnlab"] = json.dumps(info)
    raw = json.dumps(header).encode()
    ckpt.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + hlen:])
    msg = expect_bad(ckpt, "newer rnnlab", "upgrade")
    assert f"version {VERSION + 1}" in msg


DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8, np.uint16,
          np.uint32, np.uint64, np.bool_]


@settings(derandomize=True, max_examples=50, deadline=None)
@given(st.dictionaries(
    st.text(min_size=1, max_size=8).filter(lambda s: s != "__metadata__"),
    st.tuples(st.sampled_from(DTYPES), st.lists(st.integers(0, 4), max_size=3), st.integers(0, 2**32 - 1)),
    max_size=5),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(), st.booleans(), st.none()), max_size=4))
def test_round_trip_property(tmp_path_factory, spec, meta):
    ts = {}
    for name, (dtype, shape, seed) in spec.items():
        raw = np.random.default_rng(seed).integers(0, 256, int(np.prod(shape)) * np.dtype(dtype).itemsize,
                                                    dtype=np.uint8)
        ts[name] = raw.view(dtype).reshape(shape) if dtype is not np.bool_ else (raw & 1).astype(bool).reshape(shape)
    p = tmp_path_factory.mktemp("prop") / "c.safetensors"
    save(p, ts, meta)
    got, got_meta = load(p)
    assert got_meta == meta and set(got) == set(ts)
    for k in ts:
        assert same(ts[k], got[k])
    ref = load_file(str(p))
    for k in ts:
        assert same(ts[k], ref[k])
