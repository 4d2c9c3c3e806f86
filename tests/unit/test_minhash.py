"""MinHash + LSH (pipeline/minhash.py): what is found around the threshold, how close the
estimates are to the true Jaccard similarity, and that the results never change between runs."""

import random

import numpy as np

from tunekit.pipeline import minhash


def words(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def pair_with_jaccard(tag: str, n: int, common: int) -> tuple[str, str, float]:
    """Two texts of n distinct words sharing `common` of them (shingle=1: Jaccard of word sets)."""
    shared = words(f"{tag}s", common)
    a = shared + words(f"{tag}a", n - common)
    b = shared + words(f"{tag}b", n - common)
    return " ".join(a), " ".join(b), common / (2 * n - common)


def test_pairs_well_above_the_threshold_are_found_and_well_below_are_not():
    texts, high, low = [], [], []
    for t in range(15):
        a, b, j = pair_with_jaccard(f"h{t}x", 100, 98)   # J = 0.96
        assert j > 0.95
        high.append((len(texts), len(texts) + 1))
        texts += [a, b]
        a, b, j = pair_with_jaccard(f"l{t}x", 100, 75)   # J = 0.6
        assert abs(j - 0.6) < 0.01
        low.append((len(texts), len(texts) + 1))
        texts += [a, b]
    i, j, sim = minhash.near_duplicates(texts, threshold=0.8, k=1)
    found = set(zip(i.tolist(), j.tolist()))
    assert set(high) <= found
    assert not (set(low) & found)
    assert found == set(high)  # and nothing across unrelated texts
    assert (sim >= 0.8).all()


def test_a_lower_threshold_finds_the_middling_pairs():
    a, b, j = pair_with_jaccard("m", 100, 82)  # J = 0.695
    i, _, _ = minhash.near_duplicates([a, b], threshold=0.5, k=1)
    assert len(i) == 1
    i, _, _ = minhash.near_duplicates([a, b], threshold=0.9, k=1)
    assert len(i) == 0


def test_estimates_are_close_to_the_true_jaccard_on_random_sets():
    rng = random.Random(7)
    errors = []
    for t in range(60):
        n = rng.randint(20, 120)
        common = rng.randint(0, n)
        a, b, true = pair_with_jaccard(f"r{t}x", n, common)
        sig = minhash.signatures([a, b], k=1)
        est = minhash.similarity(sig, np.array([0]), np.array([1]))[0]
        errors.append(est - true)
    errors = np.abs(np.array(errors))
    # 128 hash functions: standard deviation at most 0.5/sqrt(128) = 0.044
    assert errors.mean() < 0.04, errors
    assert errors.max() < 0.15, errors


def test_word_shingles_follow_word_order():
    a = "one two three four five six seven eight"
    b = " ".join(reversed(a.split()))
    sig = minhash.signatures([a, b, a], k=3)
    sims = minhash.similarity(sig, np.array([0, 0]), np.array([1, 2]))
    assert sims[0] < 0.1 and sims[1] == 1.0


def test_keys_ignore_case_punctuation_and_spacing_only():
    keys = minhash.text_keys(["Hello, World!", "hello   world", "world hello", "hello world again", ""])
    assert keys[0] == keys[1]
    assert len(set(keys[1:].tolist())) == 4


def test_non_ascii_and_nul_texts_hash_like_the_fast_path():
    plain = minhash.fingerprints(["hello world and more words here"], k=2)
    mixed = minhash.fingerprints(["hello world and more words here", "naïve café"], k=2)
    with_nul = minhash.fingerprints(["hello world and more words here", "a\x00b"], k=2)
    for keys, sig in (mixed, with_nul):
        assert keys[0] == plain[0][0]
        assert (sig[0] == plain[1][0]).all()
    assert minhash.text_keys(["Naïve CAFÉ"])[0] == minhash.text_keys(["naïve café"])[0]


def test_results_are_deterministic():
    texts = [f"row {i} " + " ".join(random.Random(i).choices(words("w", 50), k=20)) for i in range(300)]
    first = minhash.fingerprints(texts, k=5)
    second = minhash.fingerprints(list(reversed(texts)), k=5)
    assert (first[0] == second[0][::-1]).all()
    assert (first[1] == second[1][::-1]).all()


def test_short_and_empty_texts_are_one_shingle():
    keys, sig = minhash.fingerprints(["", "hi", "hi", "hi there"], k=5)
    assert keys[1] == keys[2] != keys[0]
    assert (sig[1] == sig[2]).all()
    x, offsets = minhash.shingle_hashes(["", "a b", "a b c d e f g"], k=5)
    assert offsets.tolist() == [0, 1, 2] and len(x) == 2 + 3


def test_a_huge_bucket_still_pairs_its_odd_member():
    base = " ".join(words("w", 40))
    texts = [base] * 500 + [base + " extra"]
    sig = minhash.signatures(texts, k=5)
    i, j = minhash.candidate_pairs(sig, *minhash.lsh_params(0.8))
    assert 500 in set(j.tolist())
    assert len(i) < 500 * 20  # linear in the bucket size, not quadratic


def test_lsh_parameters_fit_the_signature():
    for t in (0.5, 0.8, 0.95):
        b, r = minhash.lsh_params(t)
        assert b * r <= minhash.NUM_PERM
        assert abs((1 / b) ** (1 / r) - t) < 0.15  # the S-curve's midpoint sits near the threshold


def test_components_join_chains():
    labels = minhash.components(6, np.array([0, 1, 4]), np.array([1, 2, 5]))
    assert labels.tolist() == [0, 0, 0, 3, 4, 4]
