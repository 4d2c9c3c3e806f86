"""MinHash signatures and LSH banding for near-duplicate texts, vectorised with numpy.

A text is normalised (lowercased, its words: runs of letters/digits), cut into shingles of
`k` consecutive words (a text shorter than k words is one shingle), and each shingle hashed to
32 bits. A signature holds, for each of NUM_PERM random hash functions, the smallest hashed
shingle; two signatures agree at one position with probability equal to the texts' Jaccard
similarity, so the share of agreeing positions estimates it. LSH cuts each signature into b
bands of r rows: texts that agree on a whole band become candidate pairs, which are then kept
when their estimated similarity reaches the threshold.

Everything runs on flat arrays (word and shingle hashes with per-text offsets, `np.minimum.reduceat`
per text) in chunks of texts, with no Python object per word or per hash: a million texts of 20
words take ~20 s on 2 cores and ~300 MB (bench/minhash_scale.py).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import numpy as np

NUM_PERM = 128          # hash functions per signature: estimate std ~0.035 at J=0.8
SEED = 1                # fixed: signatures (and so reports) are deterministic
CHUNK_TEXTS = 32_768    # texts per chunk: bounds the temporary arrays (~100 MB at 20 words a text)
PERM_BLOCK = 8          # hash functions computed at once over a chunk's shingles
WINDOW = 8              # rows of a sorted LSH bucket paired with each other (bigger buckets: + star)
_WORD = re.compile(r"\w+")


def normalise(text: str) -> str:
    """Lowercased words joined by single spaces: punctuation, case and spacing do not count."""
    return " ".join(_WORD.findall(text.lower()))


def _ascii_table() -> bytes:
    keep = {ord(c) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_\x00"}
    return bytes(c if c in keep else 32 for c in range(256))


_ASCII = _ascii_table()
_P = 0x100000001B3                      # odd, so invertible mod 2^64
_P_INV = pow(_P, -1, 1 << 64)


def _normalised_bytes(texts: Sequence[str]) -> bytes:
    """The texts' normalised words as UTF-8: words split by spaces, texts by NUL bytes.

    ASCII chunks take a fast path (one bytes.translate over the whole chunk, punctuation to
    spaces: the same words as the regex); others (or a text holding a NUL) run the regex."""
    joined = "\x00".join(texts).lower()
    if joined.isascii() and joined.count("\x00") == len(texts) - 1:
        return joined.encode("ascii").translate(_ASCII)
    return "\x00".join(" ".join(_WORD.findall(t.lower())) for t in texts).encode("utf-8")


def _mix64(x: "np.ndarray") -> "np.ndarray":
    """splitmix64's finaliser: spreads every input bit over all 64 output bits."""
    import numpy as np

    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash_words(texts: Sequence[str]) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
    """64-bit hashes of all the texts' normalised words (flat, in order), each text's word
    count and the position of its first word. No Python object per word: word bounds come from
    the byte buffer, and a word's hash from prefix sums of c_t * P^t (mod 2^64), shifted down
    by P^-start, so it depends only on the word's bytes."""
    import numpy as np

    buf = np.frombuffer(_normalised_bytes(texts), dtype=np.uint8)
    n = len(texts)
    inword = (buf != 32) & (buf != 0)
    edge = np.diff(np.concatenate(([False], inword, [False])).astype(np.int8))
    first, end = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)
    with np.errstate(over="ignore"):
        powers = np.full(len(buf) + 1, _P, dtype=np.uint64)
        powers[0] = 1
        np.multiply.accumulate(powers, out=powers)                  # P^t, wrapping
        prefix = np.zeros(len(buf) + 1, dtype=np.uint64)
        np.cumsum(buf.astype(np.uint64) * powers[:-1], out=prefix[1:])
        inverse = np.full(len(buf) + 1, _P_INV, dtype=np.uint64)
        inverse[0] = 1
        np.multiply.accumulate(inverse, out=inverse)                # P^-t
        inverse = inverse[first]
        hashes = _mix64((prefix[end] - prefix[first]) * inverse + (end - first).astype(np.uint64))
    doc = np.cumsum(buf == 0)[first] if len(first) else np.zeros(0, np.int64)
    lengths = np.bincount(doc, minlength=n).astype(np.int64)
    start = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=start[1:])
    return hashes, lengths, start


def _text_keys(hashes: "np.ndarray", lengths: "np.ndarray", start: "np.ndarray") -> "np.ndarray":
    """A 64-bit key per text from its word sequence: equal normalised texts get equal keys
    (different ones collide with odds ~2^-64 per pair). Sum of mix(word hash, position)."""
    import numpy as np

    owner_pos = np.arange(len(hashes)) - np.repeat(start, lengths)
    with np.errstate(over="ignore"):
        terms = _mix64(hashes ^ _mix64(owner_pos.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)))
        sums = np.add.reduceat(np.append(terms, np.uint64(0)), np.minimum(start, len(terms)))[:len(start)]
        return _mix64(np.where(lengths > 0, sums, np.uint64(0)) + lengths.astype(np.uint64))


def _shingles(hashes: "np.ndarray", lengths: "np.ndarray", start: "np.ndarray",
              k: int) -> tuple["np.ndarray", "np.ndarray"]:
    """32-bit hashes of each text's k-word shingles, flat, and each text's offset into them.
    A text shorter than k words is one shingle; an empty text one shingle of no words (so
    reduceat never sees an empty segment)."""
    import numpy as np

    counts = np.maximum(lengths - k + 1, 1)
    offsets = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    owner = np.repeat(np.arange(len(counts)), counts)
    first = start[owner] + (np.arange(len(owner)) - offsets[owner])
    last = start[owner] + lengths[owner]
    padded = np.append(hashes, np.uint64(0))
    acc = np.zeros(len(owner), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):  # polynomial combination of the shingle's words, in order
            pos = first + j
            inside = pos < last
            acc = np.where(inside, acc * np.uint64(0x100000001B3) + padded[np.where(inside, pos, len(hashes))], acc)
        acc = _mix64(acc + np.uint64(k))
    return (acc >> np.uint64(32)).astype(np.uint32), offsets


def shingle_hashes(texts: Sequence[str], k: int) -> tuple["np.ndarray", "np.ndarray"]:
    """The 32-bit shingle hashes of texts (flat) and each text's offset into them."""
    return _shingles(*_hash_words(texts), k)


def _perm_params(num_perm: int, seed: int) -> tuple["np.ndarray", "np.ndarray"]:
    import numpy as np

    rng = np.random.default_rng(seed)
    a = (rng.integers(0, 2**32, size=num_perm, dtype=np.uint64) | np.uint64(1)).astype(np.uint32)
    b = rng.integers(0, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


def fingerprints(texts: Sequence[str], k: int, num_perm: int = NUM_PERM,
                 seed: int = SEED) -> tuple["np.ndarray", "np.ndarray"]:
    """Per text: a 64-bit key of its normalised words (exact duplicates), and its MinHash
    signature (len(texts), num_perm) stored as uint16.

    Hash function i maps a (well mixed) 32-bit shingle hash x to a_i*x + b_i mod 2^32, a_i odd:
    a random bijection, two numpy passes per function in 32-bit arithmetic; on mixed inputs its
    minima estimate Jaccard with the binomial spread (checked in tests/unit/test_minhash.py).
    Each 32-bit minimum is stored mixed down to 16 bits (b-bit MinHash): half the memory, and
    unequal minima agree by chance only 1 in 65,536 times, a negligible bias."""
    import numpy as np

    a, b = _perm_params(num_perm, seed)
    keys = np.empty(len(texts), dtype=np.uint64)
    sig = np.empty((len(texts), num_perm), dtype=np.uint16)
    for s in range(0, len(texts), CHUNK_TEXTS):
        hashed = _hash_words(texts[s:s + CHUNK_TEXTS])
        n = len(hashed[1])
        keys[s:s + n] = _text_keys(*hashed)
        x, offsets = _shingles(*hashed, k)
        for p in range(0, num_perm, PERM_BLOCK):
            block = np.multiply.outer(a[p:p + PERM_BLOCK], x)     # (block, shingles), wraps mod 2^32
            block += b[p:p + PERM_BLOCK, None]
            low = np.minimum.reduceat(block, offsets, axis=1)
            low *= np.uint32(0x9E3779B1)
            sig[s:s + n, p:p + PERM_BLOCK] = (low >> np.uint32(16)).T
    return keys, sig


def text_keys(texts: Sequence[str]) -> "np.ndarray":
    """Only the exact-duplicate keys (see fingerprints), when near-duplicates are not wanted."""
    import numpy as np

    parts = [_text_keys(*_hash_words(texts[s:s + CHUNK_TEXTS])) for s in range(0, len(texts), CHUNK_TEXTS)]
    return np.concatenate(parts) if parts else np.zeros(0, np.uint64)


def signatures(texts: Sequence[str], k: int, num_perm: int = NUM_PERM, seed: int = SEED) -> "np.ndarray":
    """MinHash signatures of texts (see fingerprints)."""
    return fingerprints(texts, k, num_perm, seed)[1]


@lru_cache(maxsize=16)
def lsh_params(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """Bands b and rows r (b*r <= num_perm) minimising the chance of missing a pair at or above
    the threshold plus the chance of a candidate below it (the S-curve 1-(1-s^r)^b)."""
    import numpy as np

    below = np.linspace(0.0, threshold, 200)
    above = np.linspace(threshold, 1.0, 200)
    best = (float("inf"), 1, num_perm)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            false_pos = np.trapezoid(1 - (1 - below ** r) ** b, below)
            false_neg = np.trapezoid((1 - above ** r) ** b, above)
            if false_pos + false_neg < best[0]:
                best = (false_pos + false_neg, b, r)
    return best[1], best[2]


def candidate_pairs(sig: "np.ndarray", bands: int, rows: int) -> tuple["np.ndarray", "np.ndarray"]:
    """Index pairs (i < j) of signatures that agree on at least one whole band.

    Per band: hash the band's values to 64 bits, sort, and pair rows of equal hash that lie
    within WINDOW of each other in the sorted order, plus every row with its bucket's first one
    (so a huge bucket costs O(n), not O(n^2))."""
    import numpy as np

    n = len(sig)
    found = []
    width = -(-rows // 4) * 4  # a band's uint16 values, padded to whole uint64 words
    with np.errstate(over="ignore"):
        for band in range(bands):
            packed = np.zeros((n, width), dtype=np.uint16)
            packed[:, :rows] = sig[:, band * rows:(band + 1) * rows]
            words64 = packed.view(np.uint64)  # 4 values per word: a few mixes per band, not one per value
            key = np.full(n, np.uint64(band + 1))
            for c in range(words64.shape[1]):
                key = _mix64(key * np.uint64(0x9E3779B97F4A7C15) + words64[:, c])
            order = np.argsort(key, kind="stable")
            skey = key[order]
            new = np.ones(n, dtype=bool)
            new[1:] = skey[1:] != skey[:-1]
            if new.all():
                continue
            head = order[np.maximum.accumulate(np.where(new, np.arange(n), 0))]  # bucket's first row
            star = ~new
            found.append(np.stack([head[star], order[star]]))
            for d in range(1, WINDOW):
                same = skey[d:] == skey[:-d]
                if not same.any():
                    break
                found.append(np.stack([order[:-d][same], order[d:][same]]))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = np.concatenate(found, axis=1)
    lo, hi = np.minimum(pairs[0], pairs[1]), np.maximum(pairs[0], pairs[1])
    code = np.unique(lo.astype(np.int64) * n + hi)
    return code // n, code % n


def similarity(sig: "np.ndarray", i: "np.ndarray", j: "np.ndarray", block: int = 65_536) -> "np.ndarray":
    """Estimated Jaccard similarity of each pair: the share of signature positions that agree."""
    import numpy as np

    out = np.empty(len(i), dtype=np.float64)
    for s in range(0, len(i), block):
        out[s:s + block] = (sig[i[s:s + block]] == sig[j[s:s + block]]).mean(axis=1)
    return out


def near_duplicates(texts: Sequence[str], threshold: float, k: int,
                    num_perm: int = NUM_PERM) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
    """Pairs (i, j, estimated similarity) of texts at or above the threshold."""
    sig = signatures(texts, k, num_perm)
    bands, rows = lsh_params(threshold, num_perm)
    i, j = candidate_pairs(sig, bands, rows)
    sim = similarity(sig, i, j)
    keep = sim >= threshold
    return i[keep], j[keep], sim[keep]


def components(n: int, a: "np.ndarray", b: "np.ndarray") -> "np.ndarray":
    """Connected components of n nodes joined by edges (a[e], b[e]): each node's label is the
    smallest node of its component (min-label propagation with pointer jumping, all numpy)."""
    import numpy as np

    label = np.arange(n)
    if len(a) == 0:
        return label
    while True:
        low = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new]
        while True:  # jump pointers until each node points at a root
            nxt = new[new]
            if (nxt == new).all():
                break
            new = nxt
        if (new == label).all():
            return label
        label = new
