"""Many-to-many, unaligned: an encoder RNN reads the source, its final state starts a decoder RNN that writes the
target (Sutskever et al.'s encoder-decoder, without attention).

    s = encoder(x_1..x_S)                       the true last state of each padded source (net.py's masking)
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

from . import data, loop, net, store
from ..config import replace
from ..engines.numpy import model
from ..errors import UserError
from ..vocab import Vocab

BOS, EOS = "\x02", "\x03"


def shapes(mcfg, info=None) -> dict:
    return {**{"enc." + k: s for k, s in net.stack_shapes(mcfg).items()},
            **{"dec." + k: s for k, s in model.param_shapes(mcfg).items()}}


def init_params(mcfg, seed: int, dtype) -> dict:
    return {**{"enc." + k: v for k, v in net.init_params(mcfg, seed, dtype).items()},
            **{"dec." + k: v for k, v in model.init_params(mcfg, seed + 1, dtype).items()}}


def part(params: dict, prefix: str) -> dict:
    """The sub-dict under `prefix`, names without it (the same arrays, no copies)."""
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


def encode(params, mcfg, src_ids, src_mask, rng=None):
    """The encoder's final state (tuple of (L, N, H)) for padded sources (N, S), and its cache."""
    enc = part(params, "enc.")
    zero = net.zero_state(mcfg, src_ids.shape[0], enc["rnn.weight_hh_l0"].dtype)
    _, state, cache = net.forward(enc, mcfg, src_ids, src_mask, zero, rng)
    return state, cache


def loss_and_grads(params, mcfg, src, src_mask, dec_in, dec_out, dec_mask, rng=None):
    """Teacher-forced loss and gradients. src/src_mask (N, S); dec_in = BOS + target, dec_out = target + EOS,
    dec_mask (N, U+1). Returns (loss summed over every real target step of every pair, grads of its mean over N)."""
    N = src.shape[0]
    state, enc_cache = encode(params, mcfg, src, src_mask, rng)
    dec = part(params, "dec.")
    out, _, dec_cache = net.forward(dec, mcfg, dec_in, None, state, rng)   # padded steps come after: not scored
    logits = net.linear(out, dec["decoder.weight"], dec["decoder.bias"])   # (N, U+1, V)
    loss, dlogits = net.masked_cross_entropy(logits, dec_out, dec_mask, 1.0 / N)
    dout, dw, db = net.linear_backward(dlogits, out, dec["decoder.weight"])   # (N, U+1, H)
    g_dec, dstate = net.backward(dout, None, dec, mcfg, dec_cache)
    g_enc, _ = net.backward(None, dstate, part(params, "enc."), mcfg, enc_cache)   # across the boundary
    grads = {"enc." + k: v for k, v in g_enc.items()}
    grads.update({"dec." + k: v for k, v in g_dec.items()})
    grads["dec.decoder.weight"], grads["dec.decoder.bias"] = dw, db
    return loss, grads


def _next_logp(dec, mcfg, ids, state):
    """One decoder step for K prefixes: ids (K,) -> log-probabilities (K, V) float64, new state."""
    out, state, _ = net.forward(dec, mcfg, ids[:, None], None, state)
    return net.log_softmax(net.linear(out[:, 0], dec["decoder.weight"], dec["decoder.bias"])), state


def greedy(params, mcfg, vocab, seqs, max_len: int, batch_size: int = 256) -> list:
    """The most likely character at every step, for a list of source id arrays; stops at EOS or max_len.
    Returns one id list per source (without EOS)."""
    dec, bos, eos = part(params, "dec."), vocab.symbols.index(BOS), vocab.symbols.index(EOS)
    results = []
    for a in range(0, len(seqs), batch_size):
        src, mask = data.pad(seqs[a:a + batch_size])
        state, _ = encode(params, mcfg, src, mask)
        N = src.shape[0]
        ids, done, outs = np.full(N, bos, np.int64), np.zeros(N, bool), [[] for _ in range(N)]
        for _ in range(max_len):
            logp, state = _next_logp(dec, mcfg, ids, state)
            ids = logp.argmax(axis=1)                                          # ties: the lowest id
            for n in np.flatnonzero(~done & (ids != eos)):
                outs[n].append(int(ids[n]))
            done |= ids == eos
            if done.all():
                break
        results.extend(outs)
    return results


def beam_search(params, mcfg, vocab, seq, width: int, max_len: int) -> list:
    """Beam search for one source (id array): keep the `width` most likely prefixes (total log-probability);
    a prefix that picks EOS is finished; stop when no living prefix can beat the best finished one (log-probs are
    <= 0, so scores only fall). Ties go to the larger last-step log-prob, then the lowest id, as greedy's argmax."""
    if width < 1:
        raise UserError(f"--beam must be >= 1, got {width}")
    dec, bos, eos = part(params, "dec."), vocab.symbols.index(BOS), vocab.symbols.index(EOS)
    src, mask = data.pad([seq])
    state, _ = encode(params, mcfg, src, mask)                                 # each (L, 1, H)
    prefixes, scores, ids = [[]], np.zeros(1), np.array([bos])
    finished = []                                                              # (score, prefix)
    for _ in range(max_len):
        logp, state = _next_logp(dec, mcfg, ids, state)                        # (K, V)
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


def decode(params, mcfg, vocab, seqs, max_len: int, beam: int = 1) -> list:
    """Output strings for source id arrays: greedy (batched) when beam == 1, else beam search per source."""
    ids = greedy(params, mcfg, vocab, seqs, max_len) if beam == 1 else \
        [beam_search(params, mcfg, vocab, s, beam, max_len) for s in seqs]
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


def train(mcfg, tcfg, opts: dict, out, resume: bool = False, overrides: dict | None = None, progress=None,
          log=print, stop_at=None) -> dict:
    """Train an encoder-decoder on source/target pairs at tcfg.data into `out` (or resume the run there).
    opts: source_column, target_column, delimiter. Returns the last validation figures (val_exact, val_cer, ...)."""
    run = loop.open_run(out, resume, "seq2seq", shapes)
    if run is not None:
        opts, mcfg = run.info["options"], run.mcfg
        run.tcfg = tcfg = replace(run.tcfg, **(overrides or {}))
    sources, targets = load_pairs(tcfg.data, opts["source_column"], opts["target_column"], opts.get("delimiter"))
    vocab = Vocab.from_text("".join(sources) + "".join(targets) + BOS + EOS) if run is None else run.vocab
    src = data.encode_all(vocab, sources, "data")
    tgt = data.encode_all(vocab, targets, "data")
    bos, eos = vocab.symbols.index(BOS), vocab.symbols.index(EOS)
    tr, va = data.split(len(src), tcfg.val_frac, tcfg.seed)
    if run is None:
        mcfg = replace(mcfg, vocab_size=len(vocab))
        params = init_params(mcfg, tcfg.seed, np.dtype(tcfg.dtype))
        from ..engines.numpy.optim import init_state
        max_tgt = max(len(targets[i]) for i in tr)
        run = store.Run("seq2seq", mcfg, tcfg, vocab, params, init_state(params, tcfg), 0, None,
                        np.random.default_rng(tcfg.seed + 1), {"options": opts, "max_target_len": max_tgt})
    max_len = 2 * run.info["max_target_len"] + 10
    log(f"rnnlab seq2seq: {mcfg.cell} H={mcfg.hidden_size} L={mcfg.num_layers} V={len(vocab)} | "
        f"{len(tr):,} train / {len(va):,} val pairs | N={tcfg.batch_size} {tcfg.optimizer} lr={tcfg.lr:g} | "
        f"{'resuming at step %d, ' % run.step if run.step else ''}run dir {out}")

    def batch(rows):
        s, sm = data.pad([src[i] for i in rows])
        din, dm = data.pad([np.concatenate([[bos], tgt[i]]) for i in rows])
        dout, _ = data.pad([np.concatenate([tgt[i], [eos]]) for i in rows])
        return s, sm, din, dout, dm

    def grad_fn(params, step, rng):
        rows = tr[data.batch_rows(len(tr), tcfg.batch_size, step, tcfg.seed)]
        b = batch(rows)
        loss, grads = loss_and_grads(params, mcfg, *b, rng)
        return loss, grads, int(b[4].sum())

    def eval_fn(params):
        rows = va if len(va) else tr
        loss = 0.0
        for a in range(0, len(rows), 256):
            s, sm, din, dout, dm = batch(rows[a:a + 256])
            state, _ = encode(params, mcfg, s, sm)
            o, _, _ = net.forward(part(params, "dec."), mcfg, din, None, state)
            logits = net.linear(o, params["dec.decoder.weight"], params["dec.decoder.bias"])
            loss += net.masked_cross_entropy(logits, dout, dm, 1.0)[0]
        loss /= sum(len(tgt[i]) + 1 for i in rows)
        sc = scores(decode(params, mcfg, vocab, [src[i] for i in rows], max_len), [targets[i] for i in rows])
        which = "val" if len(va) else "train (no validation split)"
        return {"val_exact": sc["exact"], "val_cer": sc["cer"], "val_loss": loss, "score": [sc["exact"], -sc["cer"]],
                "line": f"{which} exact match {sc['exact']:.4f}  CER {sc['cer']:.4f}  loss {loss:.4f} nats/char"}

    return loop.fit(run, out, grad_fn, eval_fn, tcfg.batch_size, progress, log, stop_at)
