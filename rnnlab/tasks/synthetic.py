"""Small synthetic tasks for the three shapes, generated on the spot so that everything runs with no download.

    many-to-one (text, label)     parity     bit strings -> even/odd number of 1s          1101 -> odd
                                  brackets   ()[] strings -> balanced/unbalanced            ([]) -> balanced
    many-to-many (source, target) reverse    a string -> the same reversed                 abcd -> dcba
                                  sort       digits -> the same sorted                     3141 -> 1134
                                  words      a number -> English words          342 -> three hundred forty-two
                                  dates      ISO date -> day month year                    2021-03-04 -> 4 March 2021
    one-to-many (label, text)     styles     x/y -> lines of letters a-h with opposite frequencies

Each generator is a pure function of (n, seed, max_len): `generate("reverse", 3, seed=0)` gives the same rows on
every machine. Rows are tuples of str, written as TSV with a header by `rnnlab synth TASK --out FILE`.
"""
from __future__ import annotations

import calendar
import datetime

import numpy as np

from ..errors import UserError

HEADERS = {"parity": ("text", "label"), "brackets": ("text", "label"), "reverse": ("source", "target"),
           "sort": ("source", "target"), "words": ("source", "target"), "dates": ("source", "target"),
           "styles": ("label", "text")}
TASKS = tuple(HEADERS)
DEFAULT_MAX_LEN = {"parity": 12, "brackets": 12, "reverse": 8, "sort": 8, "words": 4, "dates": 0, "styles": 24}

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
        "seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """0 <= n < 10**6 in English words, American style (no 'and'): 342 -> 'three hundred forty-two'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("-" + _ONES[n % 10] if n % 10 else "")
    if n < 1000:
        return _ONES[n // 100] + " hundred" + (" " + number_words(n % 100) if n % 100 else "")
    return number_words(n // 1000) + " thousand" + (" " + number_words(n % 1000) if n % 1000 else "")


def balanced(s: str) -> bool:
    """Whether every bracket of s closes the last one opened: '([])' yes, '([)]' no."""
    stack = []
    for ch in s:
        if ch in "([":
            stack.append(ch)
        elif not stack or stack.pop() != {")": "(", "]": "["}[ch]:
            return False
    return not stack


def _lengths(rng, n, max_len, lo=1):
    return rng.integers(lo, max_len + 1, n)


def _dyck(rng, pairs: int) -> str:
    """A random balanced string of `pairs` bracket pairs: open while allowed, close at random."""
    out, stack, opened = [], [], 0
    while len(out) < 2 * pairs:
        if opened < pairs and (not stack or rng.random() < 0.5):
            b = "(["[rng.integers(2)]
            out.append(b)
            stack.append(b)
            opened += 1
        else:
            out.append(")" if stack.pop() == "(" else "]")
    return "".join(out)


def _brackets(rng, n, max_len):
    """Half balanced strings, half near misses: a balanced string with one edit (a replaced bracket, two
    neighbours swapped, or one deleted) that breaks the balance."""
    rows = []
    for want_balanced in rng.random(n) < 0.5:
        s = _dyck(rng, int(rng.integers(1, max_len // 2 + 1)))
        while not want_balanced and (not s or balanced(s)):
            t = list(_dyck(rng, int(rng.integers(1, max_len // 2 + 1))))
            kind, i = rng.integers(3), int(rng.integers(len(t)))
            if kind == 0:
                t[i] = "()[]"[rng.integers(4)]
            elif kind == 1:
                j = min(i + 1, len(t) - 1)
                t[i], t[j] = t[j], t[i]
            else:
                del t[i]
            s = "".join(t)
        rows.append((s, "balanced" if balanced(s) else "unbalanced"))
    return rows


def _letters(rng, length, weights, alphabet="abcdefgh"):
    """length characters: letters drawn with `weights`, a space between words of 2-5 letters."""
    out = []
    while len(out) < length:
        k = int(rng.integers(2, 6))
        out.extend(alphabet[i] for i in rng.choice(len(alphabet), k, p=weights))
        out.append(" ")
    return "".join(out[:length]).strip()


def generate(task: str, n: int, seed: int = 0, max_len: int = 0) -> list:
    """n rows of `task` (see the module doc). max_len bounds the length of the input string (0 = the task's
    default: 12 for parity and brackets, 8 for reverse and sort, 4 digits for words, 24 letters for styles)."""
    if task not in HEADERS:
        raise UserError(f"unknown synthetic task {task!r}; choose one of {', '.join(TASKS)}")
    if n < 1:
        raise UserError(f"--n must be >= 1, got {n}")
    if max_len < 0:
        raise UserError(f"--max-len must be >= 0 (0 = the task's default), got {max_len}")
    L = max_len or DEFAULT_MAX_LEN[task]
    if task == "brackets" and L < 2:
        raise UserError("--max-len must be >= 2 for brackets (one pair)")
    rng = np.random.default_rng([seed, TASKS.index(task)])
    if task == "parity":
        bits = ["".join("01"[b] for b in rng.integers(0, 2, k)) for k in _lengths(rng, n, L)]
        return [(s, "odd" if s.count("1") % 2 else "even") for s in bits]
    if task == "brackets":
        return _brackets(rng, n, L)
    if task in ("reverse", "sort"):
        alphabet = "abcdefghij" if task == "reverse" else "0123456789"
        srcs = ["".join(alphabet[i] for i in rng.integers(0, len(alphabet), k)) for k in _lengths(rng, n, L)]
        return [(s, s[::-1] if task == "reverse" else "".join(sorted(s))) for s in srcs]
    if task == "words":
        if L > 6:
            raise UserError("--max-len for words is a number of digits, at most 6")
        digits = _lengths(rng, n, L)
        nums = [int(rng.integers(0 if d == 1 else 10 ** (d - 1), 10 ** d)) for d in digits]
        return [(str(k), number_words(k)) for k in nums]
    if task == "dates":
        first, span = datetime.date(1900, 1, 1).toordinal(), 200 * 365
        days = [datetime.date.fromordinal(first + int(k)) for k in rng.integers(0, span, n)]
        return [(d.isoformat(), f"{d.day} {calendar.month_name[d.month]} {d.year}") for d in days]
    # styles: label x favours early letters, y late ones (weights 8:7:...:1 and the reverse)
    w = np.arange(8, 0, -1, dtype=np.float64)
    w /= w.sum()
    labels = rng.integers(0, 2, n)
    lengths = _lengths(rng, n, L, lo=min(8, L))
    return [("xy"[c], _letters(rng, int(k), w if c == 0 else w[::-1])) for c, k in zip(labels, lengths)]
