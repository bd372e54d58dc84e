"""Automated dataset checks of labeling QA: duplicate copy texts and duplicate images.

- Copy: texts are normalised (case, accents, punctuation, digits, whitespace); equal normalised
  texts are exact duplicates; near duplicates are found with MinHash signatures over character
  shingles, banded (LSH) into candidate pairs, and confirmed by the true Jaccard similarity.
- Images: a 64-bit perceptual hash (pHash, DCT) per image; pairs within a Hamming distance are
  duplicates (a resized or re-encoded copy that the byte-level SHA-256 of intake cannot see).

Both return groups of ids (connected components of duplicate pairs), so a dataset split can
keep each group on one side.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

_MERSENNE = (1 << 61) - 1
_PUNCT = re.compile(r"[^\w\s]|_")
_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = _DIGITS.sub("0", _PUNCT.sub(" ", text))
    return _SPACE.sub(" ", text).strip()


def shingles(text: str, k: int) -> set[int]:
    padded = f" {text} "
    grams = {padded[i:i + k] for i in range(max(1, len(padded) - k + 1))}
    return {int.from_bytes(hashlib.blake2b(g.encode(), digest_size=4).digest(), "little") for g in grams}


def _components(n: int, pairs) -> list[list[int]]:
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def duplicate_texts(ids: list[str], texts: list[str], *, threshold: float = 0.8, shingle: int = 5,
                    permutations: int = 64, bands: int = 16, seed: int = 0) -> list[dict]:
    """Groups of near-duplicate texts: ``[{"ids": [...], "kind": "exact"|"near", "similarity": min}]``."""
    norm = [normalise(t) for t in texts]
    sets = [shingles(t, shingle) for t in norm]
    rng = np.random.default_rng(seed)
    # h(x) = (a·x + b) mod p with 32-bit x and a < 2³¹: exact in unsigned 64-bit arithmetic
    a = rng.integers(1, 1 << 31, permutations, dtype=np.uint64)[:, None]
    b = rng.integers(0, _MERSENNE, permutations, dtype=np.uint64)[:, None]
    sig = np.empty((len(sets), permutations), dtype=np.uint64)
    for i, s in enumerate(sets):
        x = np.fromiter(s, dtype=np.uint64, count=len(s))
        sig[i] = ((a * x[None, :] + b) % np.uint64(_MERSENNE)).min(axis=1)
    rows = permutations // bands
    candidates: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = {}
        for i in range(len(sets)):
            buckets.setdefault(sig[i, band * rows:(band + 1) * rows].tobytes(), []).append(i)
        for members in buckets.values():
            candidates.update((members[x], members[y]) for x in range(len(members)) for y in range(x + 1, len(members)))
    pairs, sims = [], {}
    for i, j in sorted(candidates):
        sim = 1.0 if norm[i] == norm[j] else len(sets[i] & sets[j]) / max(1, len(sets[i] | sets[j]))
        if sim >= threshold:
            pairs.append((i, j))
            sims[(i, j)] = sim
    out = []
    for group in _components(len(ids), pairs):
        within = [sims[p] for p in pairs if p[0] in group]
        out.append({"ids": [ids[i] for i in group], "kind": "exact" if min(within) == 1.0 else "near",
                    "similarity": round(min(within), 4)})
    return out


def _dct_matrix(n: int) -> np.ndarray:
    k, i = np.mgrid[0:n, 0:n]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT32 = _dct_matrix(32)


def phash(image_bytes: bytes) -> int:
    """Perceptual hash: the signs of the 8×8 lowest DCT frequencies (DC left out) of a 32×32
    grey thumbnail against their median, as 64 bits. Robust to resizing and re-encoding."""
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(image_bytes)) as img:
        grey = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=float)
    low = (_DCT32 @ grey @ _DCT32.T)[:8, :8].flatten()
    bits = low > np.median(low[1:])
    bits[0] = False
    return int(np.packbits(bits).view(">u8")[0])


def duplicate_images(ids: list[str], hashes: list[int], *, max_distance: int = 6, chunk: int = 2048) -> list[dict]:
    """Groups of images whose perceptual hashes differ in at most ``max_distance`` bits."""
    h = np.array(hashes, dtype=np.uint64)
    pairs, dist = [], {}
    for lo in range(0, h.size, chunk):
        block = np.bitwise_count(h[lo:lo + chunk, None] ^ h[None, :])
        for i, j in zip(*np.nonzero(block <= max_distance)):
            i = int(i) + lo
            if i < j:
                pairs.append((i, int(j)))
                dist[(i, int(j))] = int(block[i - lo, j])
    return [{"ids": [ids[i] for i in group], "max_distance": max(dist[p] for p in pairs if p[0] in group)}
            for group in _components(len(ids), pairs)]
