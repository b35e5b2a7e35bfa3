"""Many-to-many, unaligned: an encoder RNN reads the source, its final state starts a decoder RNN that writes the
target (Sutskever et al.'s encoder-decoder, without attention).

    s = encoder(x_1..x_S)                       the true last state of each padded source (the stack's mask)
    h_0 = s;  h_t = decoder(y_{t-1}, h_{t-1})    y_0 = BOS; teacher forcing: y_{t-1} is the true previous char
    p(y_t | y_<t, x) = softmax(W_hy h_t + b_y)   loss: cross-entropy summed over y_1..y_U, EOS, mean over pairs

The gradient of the decoder's initial state is the gradient of the encoder's final state: backprop crosses the
boundary there. Shapes: N pairs, S source steps, U target steps, L layers, H hidden, V the shared vocabulary (every
character of sources and targets, plus BOS = U+0002 and EOS = U+0003, which the data must not contain).
Parameters: "enc." + the core model's embedding and layers, "dec." + a whole core language model (embedding,
layers, decoder.weight (V, H), decoder.bias (V,)); the decoder is a character model started from the source.

Predicting: greedy (the most likely character each step) or beam search keeping the `width` best prefixes by total
log-probability; width 1 is exactly greedy. Validation reports exact match (the whole output right) and the
character error rate: edit distance / target length, summed over pairs.

    >>> edit_distance("kitten", "sitting")
    3
"""
from __future__ import annotations

import numpy as np

from . import data
from .. import loop
from ..config import replace
from ..engines.numpy.layers import log_softmax
from ..errors import UserError
from ..vocab import Vocab

BOS, EOS = "\x02", "\x03"


def _encode(engine, params, seqs):
    """The decoder's start for source id arrays: the encoder's true last state of each (engine state, (L, N, H))."""
    src, mask = data.pad(seqs)
    return engine.initial_state(params, {"src": src, "src_mask": mask}), src.shape[0]


def _next_logp(engine, params, ids, state):
    """One decoder step for K prefixes: ids (K,) -> log-probabilities (K, V) float64, new state."""
    logits, state = engine.step(params, ids, state)
    return log_softmax(logits), state


def greedy(engine, params, vocab, seqs, max_len: int, batch_size: int = 256) -> list:
    """The most likely character at every step, for a list of source id arrays; stops at EOS or max_len.
    Returns one id list per source (without EOS)."""
    bos, eos = vocab.symbols.index(BOS), vocab.symbols.index(EOS)
    results = []
    for a in range(0, len(seqs), batch_size):
        state, N = _encode(engine, params, seqs[a:a + batch_size])
        ids, done, outs = np.full(N, bos, np.int64), np.zeros(N, bool), [[] for _ in range(N)]
        for _ in range(max_len):
            logp, state = _next_logp(engine, params, ids, state)
            ids = logp.argmax(axis=1)                                          # ties: the lowest id
            for n in np.flatnonzero(~done & (ids != eos)):
                outs[n].append(int(ids[n]))
            done |= ids == eos
            if done.all():
                break
        results.extend(outs)
    return results


def beam_search(engine, params, vocab, seq, width: int, max_len: int) -> list:
    """Beam search for one source (id array): keep the `width` most likely prefixes (total log-probability);
    a prefix that picks EOS is finished; stop when no living prefix can beat the best finished one (log-probs are
    <= 0, so scores only fall). Ties go to the larger last-step log-prob, then the lowest id, as greedy's argmax."""
    if width < 1:
        raise UserError(f"--beam must be >= 1, got {width}")
    bos, eos = vocab.symbols.index(BOS), vocab.symbols.index(EOS)
    state, _ = _encode(engine, params, [seq])                                  # each (L, 1, H)
    prefixes, scores, ids = [[]], np.zeros(1), np.array([bos])
    finished = []                                                              # (score, prefix)
    for _ in range(max_len):
        logp, state = _next_logp(engine, params, ids, state)                   # (K, V)
        total = scores[:, None] + logp                                         # (K, V)
        best = np.lexsort((-logp.ravel(), -total.ravel()))[:width]              # flat indices, best first
        rows, toks, alive = [], [], []
        for f in best.tolist():
            r, v = divmod(f, logp.shape[1])
            if v == eos:
                finished.append((total[r, v], prefixes[r]))
            else:
                rows.append(r), toks.append(v), alive.append(total[r, v])
        if not rows or (finished and max(s for s, _ in finished) >= max(alive)):
            break
        prefixes = [prefixes[r] + [t] for r, t in zip(rows, toks)]
        scores, ids = np.array(alive), np.array(toks, dtype=np.int64)
        state = tuple(s[:, rows] for s in state)
    # with nothing finished by max_len, the best living prefix (greedy's truncated output when width == 1)
    return max(finished, key=lambda f: f[0])[1] if finished else prefixes[0]


def edit_distance(a, b) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning a into b."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def decode(engine, params, vocab, seqs, max_len: int, beam: int = 1) -> list:
    """Output strings for source id arrays: greedy (batched) when beam == 1, else beam search per source."""
    ids = greedy(engine, params, vocab, seqs, max_len) if beam == 1 else \
        [beam_search(engine, params, vocab, s, beam, max_len) for s in seqs]
    return ["".join(vocab.symbols[i] for i in out) for out in ids]


def scores(preds, targets) -> dict:
    """Exact-match accuracy and character error rate (total edit distance / total target length)."""
    exact = sum(p == t for p, t in zip(preds, targets))
    edits = sum(edit_distance(p, t) for p, t in zip(preds, targets) if p != t)
    return {"exact": exact / max(len(targets), 1), "cer": edits / max(sum(len(t) for t in targets), 1)}


def load_pairs(path, source_column, target_column, delimiter=None):
    cols = data.read_table(path, {"source": source_column, "target": target_column}, delimiter)
    for role in ("source", "target"):
        for n, s in enumerate(cols[role]):
            if BOS in s or EOS in s:
                raise UserError(f"{path}: data row {n + 1} has U+0002 or U+0003 in its {role}; rnnlab reserves "
                                f"them as start and end markers: remove them")
    return cols["source"], cols["target"]


def prepare(mcfg, tcfg, opts: dict, snap, run) -> loop.Setup:
    """The encoder-decoder's Setup: the pairs at tcfg.data (the run's vocabulary, when resuming)."""
    sources, targets = load_pairs(tcfg.data, opts["source_column"], opts["target_column"], opts.get("delimiter"))
    vocab = Vocab.from_text("".join(sources) + "".join(targets) + BOS + EOS) if snap is None else snap.vocab
    src, tgt = data.encode_all(vocab, sources, "data"), data.encode_all(vocab, targets, "data")
    bos, eos = vocab.symbols.index(BOS), vocab.symbols.index(EOS)
    tr, va = data.split(len(src), tcfg.val_frac, tcfg.seed)
    max_tgt = max(len(targets[i]) for i in tr) if snap is None else snap.extra["max_target_len"]

    def pairs(rows) -> dict:
        s, sm = data.pad([src[i] for i in rows])
        din, dm = data.pad([np.concatenate([[bos], tgt[i]]) for i in rows])
        dout, _ = data.pad([np.concatenate([tgt[i], [eos]]) for i in rows])
        return {"x": din, "y": dout, "mask": dm, "src": s, "src_mask": sm}

    def evaluate(engine, params) -> dict:
        rows = va if len(va) else tr
        loss = sum(engine.evaluate(params, pairs(rows[a:a + 256]), None)[0] for a in range(0, len(rows), 256))
        loss /= sum(len(tgt[i]) + 1 for i in rows)
        sc = scores(decode(engine, params, vocab, [src[i] for i in rows], 2 * max_tgt + 10),
                    [targets[i] for i in rows])
        which = "val" if len(va) else "train (no validation split)"
        return {"val_exact": sc["exact"], "val_cer": sc["cer"], "val_loss": loss, "score": [sc["exact"], -sc["cer"]],
                "line": f"{which} exact match {sc['exact']:.4f}  CER {sc['cer']:.4f}  loss {loss:.4f} nats/char"}

    job = loop.Job(lambda step: pairs(tr[data.batch_rows(len(tr), tcfg.batch_size, step, tcfg.seed)]), evaluate,
                   tcfg.batch_size)
    return loop.Setup(replace(mcfg, vocab_size=len(vocab), task="seq2seq", num_labels=0), vocab,
                      {"options": opts, "max_target_len": max_tgt}, job,
                      f"{len(tr):,} train / {len(va):,} val pairs")


def train(mcfg, tcfg, opts: dict, out, resume: bool = False, overrides: dict | None = None, progress=None,
          log=print, stop_at=None, engine: str = "numpy", engine_options: dict | None = None) -> dict:
    """Train an encoder-decoder on source/target pairs at tcfg.data into `out` (or resume the run there).
    opts: source_column, target_column, delimiter. Returns the last validation figures (val_exact, val_cer, ...)."""
    return loop.train(prepare, mcfg, tcfg, out, engine, resume, overrides, opts, "seq2seq", "seq2seq train", progress,
                      log, stop_at, engine_options)
