import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.errors import UserError
from rnnlab.streams import Streams, split
from rnnlab.text import embedded_corpus, read_text
from rnnlab.vocab import Vocab, build_vocab_streaming, encode_file, load_ids


def write(tmp_path, data: bytes, name="corpus.txt"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def one_line(e):
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


# ---- read_text -------------------------------------------------------------------------------------------------

def test_utf8_bom_dropped_and_nothing_else(tmp_path):
    p = write(tmp_path, b"\xef\xbb\xbfh\xc3\xa9llo\r\nworld\r\n")
    assert read_text(p) == "h\u00e9llo\r\nworld\r\n"


def test_crlf_kept(tmp_path):
    assert read_text(write(tmp_path, b"a\r\nb\rc\n")) == "a\r\nb\rc\n"


def test_invalid_utf8_names_offset_and_suggests_bytes(tmp_path):
    p = write(tmp_path, "héllo ".encode() + b"\xff" + b" more")
    with pytest.raises(UserError) as e:
        read_text(p)
    msg = one_line(e)
    assert "invalid UTF-8 at byte 7 (0xFF)" in msg and "--encoding bytes" in msg and str(p) in msg


def test_cp1252_smart_quote(tmp_path):
    p = write(tmp_path, b"it" + b"\x92" + b"s")  # Windows-1252 right single quote
    with pytest.raises(UserError) as e:
        read_text(p)
    msg = one_line(e)
    assert "byte 2 (0x92)" in msg and "--encoding bytes" in msg and "1252" in msg


def test_invalid_utf8_offset_is_absolute_across_chunks(tmp_path):
    data = "é".encode() * 10 + b"\xc3(" + b"x" * 5
    p = write(tmp_path, data)
    for chunk in (1, 2, 3, 7, 1 << 20):
        with pytest.raises(UserError, match=r"at byte 20 \(0xC3\)"):
            build_vocab_streaming(p, chunk_bytes=chunk)


def test_truncated_utf8_at_end(tmp_path):
    with pytest.raises(UserError, match=r"at byte 3 \(0xE2\)"):
        read_text(write(tmp_path, b"abc\xe2\x82"))


@pytest.mark.parametrize("bom,name", [(b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"),
                                      (b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32")])
def test_utf16_32_bom(tmp_path, bom, name):
    body = "hi".encode("utf-16-le" if name == "UTF-16" else "utf-32-le")
    with pytest.raises(UserError) as e:
        read_text(write(tmp_path, bom + body))
    msg = one_line(e)
    assert f"is {name} text" in msg and "iconv" in msg and "--encoding bytes" in msg


def test_nul_bytes(tmp_path):
    with pytest.raises(UserError) as e:
        read_text(write(tmp_path, b"abc\x00def"))
    msg = one_line(e)
    assert "NUL byte at byte 3" in msg and "--encoding bytes" in msg


def test_empty_file(tmp_path):
    with pytest.raises(UserError, match="is empty"):
        read_text(write(tmp_path, b""))
    with pytest.raises(UserError, match="is empty"):
        read_text(write(tmp_path, b"\xef\xbb\xbf", "bom-only.txt"))
    with pytest.raises(UserError, match="is empty"):
        read_text(write(tmp_path, b"", "e2"), encoding="bytes")


def test_directory_and_missing(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        read_text(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        read_text(tmp_path / "nope.txt")


def test_unreadable(tmp_path, monkeypatch):
    p = write(tmp_path, b"secret")
    if os.name == "posix" and os.geteuid() != 0:
        p.chmod(0)
    else:  # root reads anything: simulate the refusal instead
        def refuse(*a, **k):
            raise PermissionError(13, "Permission denied")
        monkeypatch.setattr("rnnlab.text.open", refuse, raising=False)
    with pytest.raises(UserError, match="permission denied"):
        read_text(p)


def test_unknown_encoding(tmp_path):
    with pytest.raises(UserError, match="--encoding"):
        read_text(write(tmp_path, b"x"), encoding="latin-1")


def test_bytes_mode_on_binary_file(tmp_path):
    data = bytes(range(256)) * 3 + b"\xff\xfe\x00\x00"
    p = write(tmp_path, data, "blob.bin")
    assert read_text(p, encoding="bytes") == data
    v = Vocab.from_text(read_text(p, encoding="bytes"))
    assert v.symbols == list(range(256)) and v.dtype == np.uint8 and v.encoding == "bytes"
    ids = v.encode(data)
    assert ids.tolist() == list(data)
    w = Vocab.from_text(b"\xc3\xa9\xff")
    assert w.decode(w.encode(b"\xc3\xa9\xff")) == "\u00e9\ufffd"  # shown with a replacement character


# ---- Vocab -----------------------------------------------------------------------------------------------------

def test_vocab_sorted_and_json_round_trip():
    v = Vocab.from_text("the quick brown fox ñé\u4e2d")
    assert v.symbols == sorted(set("the quick brown fox ñé\u4e2d"))
    d = json.loads(json.dumps(v.to_json()))
    assert d == {"encoding": "utf-8", "symbols": v.symbols}
    assert Vocab.from_json(d) == v
    b = Vocab.from_text(b"\x05\x01\x05\xff")
    assert b.to_json() == {"encoding": "bytes", "symbols": [1, 5, 255]}
    assert Vocab.from_json(json.loads(json.dumps(b.to_json()))) == b


@pytest.mark.parametrize("bad", [None, [], {"symbols": ["a"]}, {"encoding": "utf-8", "symbols": ["b", "a"]},
                                 {"encoding": "utf-8", "symbols": ["ab"]}, {"encoding": "bytes", "symbols": [300]},
                                 {"encoding": "bytes", "symbols": [True]}, {"encoding": "x", "symbols": []}])
def test_vocab_from_json_malformed(bad):
    with pytest.raises(UserError):
        Vocab.from_json(bad)


def test_unseen_characters_listed():
    v = Vocab.from_text("abc")
    with pytest.raises(UserError) as e:
        v.encode("abé xñ")
    msg = one_line(e)
    assert "4 characters not in the vocabulary" in msg
    assert "'é' (U+00E9)" in msg and "'ñ' (U+00F1)" in msg and "' ' (U+0020)" in msg
    assert v.encode("abé xñc", unknown="skip").tolist() == [0, 1, 2]
    with pytest.raises(UserError) as e:
        v.encode("".join(chr(0x400 + i) for i in range(30)))
    assert "(10 more)" in one_line(e)


def test_dtype_choice():
    assert Vocab.from_text("abc").dtype == np.uint8
    assert Vocab([chr(i) for i in range(256)]).dtype == np.uint8
    assert Vocab([chr(i) for i in range(257)]).dtype == np.uint16
    assert Vocab([chr(i) for i in range(0xE000, 0xE000 + 65536)] + [chr(0x20000)]).dtype == np.uint32
    v = Vocab([chr(0x100 + i) for i in range(300)])
    ids = v.encode(chr(0x100 + 299))
    assert ids.dtype == np.uint16 and ids.tolist() == [299]


def test_diff():
    a, b = Vocab.from_text("abc"), Vocab.from_text("bcdé")
    d = a.diff(b)
    assert "2 added: 'd' (U+0064), 'é' (U+00E9)" in d and "1 removed: 'a' (U+0061)" in d
    assert a.diff(Vocab.from_text("cab")) == ""
    assert "encoding" in a.diff(Vocab.from_text(b"abc"))


def test_decode_out_of_range():
    with pytest.raises(UserError, match="out of range"):
        Vocab.from_text("ab").decode([0, 2])


@settings(derandomize=True, max_examples=50, deadline=None)
@given(st.text(min_size=1))
def test_text_ids_text_round_trip(text):
    v = Vocab.from_text(text)
    ids = v.encode(text)
    assert len(ids) == len(text) and v.decode(ids) == text
    assert Vocab.from_json(json.loads(json.dumps(v.to_json()))) == v


# ---- split -----------------------------------------------------------------------------------------------------

def test_split_rule():
    ids = np.arange(1000)
    tr, va = split(ids)
    assert len(tr) == int(1000 * 0.9) == 900 and tr[-1] + 1 == va[0] and va[-1] == 999
    tr, va = split(np.arange(7), 0.25)
    assert tr.tolist() == list(range(int(7 * 0.75))) and va.tolist() == [5, 6]
    tr, va = split(ids, 0)
    assert len(tr) == 1000 and len(va) == 0
    for bad in (-0.1, 1, 1.5):
        with pytest.raises(UserError):
            split(ids, bad)


# ---- Streams ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,N,T", [(101, 4, 5), (100, 3, 7), (50, 1, 49), (1000, 16, 8), (9, 2, 4)])
def test_streams_against_naive(n, N, T):
    ids = (np.arange(n) * 7919 % 251).astype(np.uint8)
    s = Streams(ids, N, T)
    L = (n - 1) // N
    assert s.num_batches == len(s) == L // T
    for b in range(s.num_batches):
        x, y = s.batch(b)
        assert x.shape == y.shape == (N, T) and x.dtype == y.dtype == np.int64
        for i in range(N):
            stream = ids[i * L: i * L + L + 1]
            assert x[i].tolist() == stream[b * T: b * T + T].tolist()
            assert y[i].tolist() == stream[b * T + 1: b * T + T + 1].tolist()
    batches = list(s)
    for b in range(len(batches) - 1):  # each row continues where it stopped
        (x0, y0), (x1, _) = batches[b], batches[b + 1]
        assert (x1[:, 0] == y0[:, -1]).all()
        assert (x1[:, 0] == ids[np.arange(N) * L + (b + 1) * T]).all()
    with pytest.raises(IndexError):
        s.batch(s.num_batches)


def test_streams_too_short():
    Streams(np.zeros(13), 3, 4)  # exactly N*T+1
    with pytest.raises(UserError) as e:
        Streams(np.zeros(12), 3, 4)
    msg = one_line(e)
    assert "need 13 characters but only 12" in msg and "--batch-size" in msg and "--seq-len" in msg
    with pytest.raises(UserError):
        Streams(np.zeros(100), 0, 4)


def test_streams_on_memmap(tmp_path):
    text = "ab\u00e9\u4e2d\n" * 500
    p = write(tmp_path, text.encode())
    v = build_vocab_streaming(p)
    n = encode_file(p, v, tmp_path / "ids.bin")
    ids = load_ids(tmp_path / "ids.bin", v.dtype)
    assert isinstance(ids, np.memmap) and n == len(ids) == len(text)
    s = Streams(ids, 4, 10)
    x, y = s.batch(s.num_batches - 1)
    ref = Streams(v.encode(text), 4, 10).batch(s.num_batches - 1)
    assert (x == ref[0]).all() and (y == ref[1]).all()


# ---- streaming -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
def test_chunked_encode_equals_whole(tmp_path, chunk):
    text = "\ufeff".encode() + ("a\u00e9b\u4e2d\U0001F600\r\n" * 40).encode()
    p = write(tmp_path, text)
    whole = read_text(p)
    v = Vocab.from_text(whole)
    assert build_vocab_streaming(p, chunk_bytes=chunk) == v
    out = tmp_path / f"ids-{chunk}.bin"
    assert encode_file(p, v, out, "utf-8", chunk_bytes=chunk) == len(whole)
    assert np.array_equal(load_ids(out, v.dtype), v.encode(whole))
    assert v.decode(load_ids(out, v.dtype)) == whole


def test_chunked_bytes_mode(tmp_path):
    data = bytes(range(0, 256, 3)) * 10
    p = write(tmp_path, data)
    v = build_vocab_streaming(p, "bytes", chunk_bytes=7)
    assert v == Vocab.from_text(data)
    encode_file(p, v, tmp_path / "ids.bin", chunk_bytes=7)
    assert np.array_equal(load_ids(tmp_path / "ids.bin", v.dtype), v.encode(data))


def test_encode_file_errors_leave_nothing(tmp_path):
    p = write(tmp_path, b"abc")
    with pytest.raises(UserError, match="not in the vocabulary"):
        encode_file(p, Vocab.from_text("ab"), tmp_path / "ids.bin", chunk_bytes=1)
    with pytest.raises(UserError, match="cannot write"):
        encode_file(p, Vocab.from_text("abc"), tmp_path / "missing" / "ids.bin")
    with pytest.raises(UserError, match="--encoding utf-8"):
        encode_file(p, Vocab.from_text("abc"), tmp_path / "ids.bin", "bytes")
    assert sorted(q.name for q in tmp_path.iterdir()) == ["corpus.txt"]
    with pytest.raises(UserError, match="does not exist"):
        load_ids(tmp_path / "ids.bin", np.uint8)


# ---- embedded corpus -------------------------------------------------------------------------------------------

def test_embedded_corpus():
    text = embedded_corpus()
    assert len(text) > 100_000 and text == embedded_corpus()
    v = Vocab.from_text(text)
    assert 50 < len(v) and v.decode(v.encode(text[:1000])) == text[:1000]


def test_embedded_corpus_missing(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "pydoc_data.topics", None)
    with pytest.raises(UserError, match="--data"):
        embedded_corpus()
