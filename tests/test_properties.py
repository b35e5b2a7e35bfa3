"""Property tests (hypothesis; the derandomised "ci" profile of conftest.py unless HYPOTHESIS_PROFILE=dev).

    text -> file -> chunked ids on disk -> text        any text, any chunk size, both encodings
    snapshot -> checkpoint -> snapshot                  random cell, H, L, embedding, dtype, optimiser
    softmax rows sum to 1                               layers.softmax_cross_entropy, logits up to +-1e4
    any prime samples or is one clean UserError         any string, both vocabularies, error and skip
(test_text.py already has the in-memory text -> ids -> text round trip; test_checkpoint.py the raw tensor one.)
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rnnlab import cells  # noqa: E402
from rnnlab import snapshot
from rnnlab.config import ModelConfig, TrainConfig
from rnnlab.engines.numpy import layers
from rnnlab.engines.numpy.engine import Engine
from rnnlab.errors import UserError
from rnnlab.sample import generate
from rnnlab.text import read_text
from rnnlab.vocab import Vocab, build_vocab_streaming, encode_file, load_ids

TMP = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
# Any text a UTF-8 file can hold and rnnlab accepts: no lone surrogates (not encodable), no NUL (binary).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1)


@TMP
@given(text=TEXT, chunk=st.integers(1, 64), bom=st.booleans())
def test_file_to_ids_to_text(tmp_path, text, chunk, bom):
    p = tmp_path / "t.txt"
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    assume(not (text.startswith("\ufeff") and not bom))   # a leading U+FEFF *is* a BOM and is dropped, by design
    vocab = build_vocab_streaming(p, chunk_bytes=chunk)
    assert vocab == Vocab.from_text(read_text(p))
    n = encode_file(p, vocab, tmp_path / "ids", chunk_bytes=chunk)
    ids = load_ids(tmp_path / "ids", vocab.dtype)
    assert n == len(text) and vocab.decode(ids) == text
    assert np.array_equal(ids, vocab.encode(read_text(p)))        # chunked == whole file


@TMP
@given(data=st.binary(min_size=1), chunk=st.integers(1, 64))
def test_bytes_to_ids_to_bytes(tmp_path, data, chunk):
    p = tmp_path / "b.bin"
    p.write_bytes(data)
    vocab = build_vocab_streaming(p, "bytes", chunk_bytes=chunk)
    encode_file(p, vocab, tmp_path / "ids", chunk_bytes=chunk)
    ids = load_ids(tmp_path / "ids", vocab.dtype)
    assert bytes(np.asarray(vocab.symbols, dtype=np.uint8)[ids]) == data


CONFIGS = st.fixed_dictionaries({
    "cell": st.sampled_from(cells.NAMES), "hidden_size": st.integers(1, 9),
    "num_layers": st.integers(1, 3), "embed_dim": st.integers(0, 4), "dropout": st.sampled_from([0.0, 0.3]),
    "dtype": st.sampled_from(["float32", "float64"]), "optimizer": st.sampled_from(["sgd", "adagrad", "rmsprop", "adam"]),
    "momentum": st.sampled_from([0.0, 0.9]), "batch_size": st.integers(1, 3), "step": st.integers(0, 10**6),
    "vocab": st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12), "seed": st.integers(0, 2**32),
})


@TMP
@given(c=CONFIGS)
def test_snapshot_round_trip(tmp_path, c):
    vocab = Vocab.from_text(c["vocab"])
    mcfg = ModelConfig(cell=c["cell"], vocab_size=len(vocab), hidden_size=c["hidden_size"],
                       num_layers=c["num_layers"], embed_dim=c["embed_dim"], dropout=c["dropout"])
    tcfg = TrainConfig(dtype=c["dtype"], optimizer=c["optimizer"], momentum=c["momentum"], batch_size=c["batch_size"],
                       seed=c["seed"] % 1000)
    engine = Engine(mcfg, tcfg)
    params = engine.init_params(c["seed"])
    opt = engine.init_opt_state(params)
    rng = np.random.default_rng(c["seed"])
    for k, v in opt.items():                        # non-zero optimiser state, so a mix-up would show
        v[...] = rng.integers(0, 5, v.shape) if k == "step" else rng.standard_normal(v.shape)
    state = tuple(s + rng.standard_normal(s.shape).astype(s.dtype) for s in engine.zero_state(tcfg.batch_size))
    snap = snapshot.Snapshot(mcfg, tcfg, vocab, params, opt, state, c["step"], 1.25, rng.bit_generator.state,
                             {"engine": "numpy"})
    p = tmp_path / "c.safetensors"
    snapshot.save(p, snap, engine.state_names)
    back = snapshot.load(p)
    assert (back.mcfg, back.tcfg, back.vocab, back.step, back.best_val) == (mcfg, tcfg, vocab, c["step"], 1.25)
    assert back.rng_state == rng.bit_generator.state and back.extra == {"engine": "numpy"}
    for a, b in ((params, back.params), (opt, back.opt_state), (dict(enumerate(state)), dict(enumerate(back.state)))):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k]), k


@given(logits=arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 30)),
                     elements=st.floats(-1e4, 1e4)),
       dtype=st.sampled_from([np.float32, np.float64]), data=st.data())
def test_softmax_rows_sum_to_one(logits, dtype, data):
    N, T, V = logits.shape
    y = np.array(data.draw(st.lists(st.integers(0, V - 1), min_size=N * T, max_size=N * T))).reshape(N, T)
    loss, grad = layers.softmax_cross_entropy(logits.astype(dtype), y, 1.0)
    p = grad.reshape(N * T, V).astype(np.float64)
    p[np.arange(N * T), y.ravel()] += 1.0                   # grad = softmax - onehot(y)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.all(p >= -tol) and np.all(p <= 1 + tol)
    assert np.allclose(p.sum(axis=1), 1.0, atol=tol * V)
    assert np.isfinite(loss) and loss >= -tol


@pytest.fixture(scope="module")
def samplers():
    """A random (untrained) small model over a character and a byte vocabulary."""
    out = {}
    for vocab in (Vocab.from_text("hello world, it's ñ\n"), Vocab.from_text("hello world\n\x92".encode("latin-1"))):
        mcfg = ModelConfig(cell="gru", vocab_size=len(vocab), hidden_size=6)
        engine = Engine(mcfg, TrainConfig(dtype="float64"))
        out[vocab.encoding] = (engine, engine.init_params(0), vocab)
    return out


# Lone surrogates included: command-line bytes that are not UTF-8 reach Python as U+DC80..U+DCFF.
PRIMES = st.text(st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)))


@given(prime=PRIMES, encoding=st.sampled_from(["utf-8", "bytes"]), unknown=st.sampled_from(["error", "skip"]))
def test_any_prime_samples_or_is_one_clean_error(samplers, prime, encoding, unknown):
    engine, params, vocab = samplers[encoding]
    try:
        texts = generate(engine, params, vocab, prime, 4, 2, seed=1, unknown=unknown)
    except UserError as e:
        msg = str(e)
        assert msg and "\n" not in msg and "prime" in msg
        if unknown == "skip":    # skipping leaves only characters that cannot exist as bytes at all
            assert encoding == "bytes" and "cannot be written as bytes" in msg
        return
    assert len(texts) == 2
    if encoding == "utf-8":
        kept = "".join(ch for ch in prime if ch in vocab.symbols)
        assert all(t.startswith(kept) and len(t) == len(kept) + 4 for t in texts)
