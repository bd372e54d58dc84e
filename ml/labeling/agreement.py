"""Inter-annotator agreement: Krippendorff's alpha, Cohen's kappa, Fleiss' kappa.

Plain NumPy. Alpha never builds a value-by-value coincidence matrix: the nominal level needs
each unit's category counts, the interval level each unit's sum of squared deviations
(Σ_{i≠j}(x_i-x_j)² = 2m·Σ(x_i-x̄)²), and the ordinal level is the interval level on mid-ranks
of the pairable values (Krippendorff's ordinal δ_ck = Σ_{g=c..k} n_g - (n_c+n_k)/2 is exactly
the difference of the mid-ranks r_c = Σ_{g<c} n_g + n_c/2). Labels from a small set of
integers (the usual case) go through one bincount into values × units counts; any other data
(real values) through the pairable values sorted by unit. Only the ratio level needs the
distinct-value pairs, in chunks.

Reference: K. Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011).
"""
from __future__ import annotations

import numpy as np

LEVELS = ("nominal", "ordinal", "interval", "ratio")


def _pairable(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values of units with at least two values: (values, compact unit index, m_u per unit)."""
    present = ~np.isnan(x)
    m = present.sum(axis=0)
    keep = m >= 2
    # column-major walk so values of one unit are adjacent (sorted by unit)
    mask_t = present[:, keep].T
    values = x[:, keep].T[mask_t]
    m_kept = m[keep]
    unit = np.repeat(np.arange(m_kept.size), m_kept)
    return values, unit, m_kept


def _small_domain(x: np.ndarray, present: np.ndarray, limit: int = 64) -> np.ndarray | None:
    """The candidate values when the data are integers spanning at most ``limit`` values."""
    if not present.any():
        return None
    lo, hi = np.nanmin(x), np.nanmax(x)
    if hi - lo >= limit or lo != np.floor(lo) or not np.all((x == np.floor(x)) | ~present):
        return None
    return np.arange(lo, hi + 1)


def _sums_from_counts(counts: np.ndarray, scale: np.ndarray | None) -> tuple[float, float, float]:
    """(n, observed, expected) disagreement sums from category counts (values × units).

    Units with fewer than two values weigh nothing. ``scale`` None is the nominal metric;
    otherwise δ = scale_c - scale_k (interval on values, ordinal on mid-ranks), with
    Σ_{i≠j}(x_i-x_j)² = 2·(m·Σx² - (Σx)²) per unit. Sums over values are matrix products."""
    ones = np.ones(counts.shape[0])
    m = ones @ counts
    pairable = m >= 2
    counts = counts * pairable
    m = m * pairable
    weight = np.divide(1.0, m - 1, out=np.zeros_like(m), where=pairable)
    n_c = counts.sum(axis=1)
    n = float(n_c.sum())
    if scale is None:
        return n, float(weight @ (m * m - ones @ (counts * counts))), n ** 2 - float(n_c @ n_c)
    scale = np.where(n_c > 0, scale, 0.0)  # values that only occur in unpairable units do not count
    v = scale - (n_c @ scale) / n          # centred, so the subtractions below do not cancel
    s1, s2 = v @ counts, (v * v) @ counts
    return n, float(2.0 * (weight @ (m * s2 - s1 * s1))), float(2.0 * n * (n_c @ (v * v)) - 2.0 * (n_c @ v) ** 2)


def _unit_sum_sq_counts(unit: np.ndarray, code: np.ndarray, n_units: int) -> np.ndarray:
    """Σ_c n_uc² for every unit u, where n_uc counts unit u's values in category c."""
    groups, sizes = np.unique(unit.astype(np.int64) * (int(code.max()) + 1) + code, return_counts=True)
    return np.bincount(groups // (int(code.max()) + 1), weights=sizes.astype(float) ** 2, minlength=n_units)


def _interval_sums(values: np.ndarray, unit: np.ndarray, m: np.ndarray) -> tuple[float, float]:
    """(observed, expected) for δ = a - b on the pairable values, in one pass over them."""
    values = values - values.mean()
    unit_mean = np.bincount(unit, weights=values, minlength=m.size) / m
    ss_unit = np.bincount(unit, weights=(values - unit_mean[unit]) ** 2, minlength=m.size)
    return float(np.sum(2.0 * m * ss_unit / (m - 1))), float(2.0 * values.size * np.sum(values ** 2))


def _ratio_delta2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    s = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(s == 0, 0.0, (a - b) / np.where(s == 0, 1.0, s))
    return d * d


def _ratio_sums(values: np.ndarray, unit: np.ndarray, m: np.ndarray, chunk: int = 2048) -> tuple[float, float]:
    starts = np.concatenate([[0], np.cumsum(m)[:-1]])
    pos = np.arange(values.size) - starts[unit]
    observed = 0.0
    for offset in range(1, int(m.max())):
        i = np.nonzero(pos + offset < m[unit])[0]
        j = i + offset
        observed += 2.0 * float(np.sum(_ratio_delta2(values[i], values[j]) / (m[unit[i]] - 1)))
    distinct, counts = np.unique(values, return_counts=True)
    counts = counts.astype(float)
    expected = 0.0
    for lo in range(0, distinct.size, chunk):
        block = _ratio_delta2(distinct[lo:lo + chunk, None], distinct[None, :])
        expected += float(counts[lo:lo + chunk] @ block @ counts)
    return observed, expected


def krippendorff_alpha(data, level: str = "nominal") -> float:
    """Krippendorff's alpha of ``data`` (coders × units, ``NaN`` for missing).

    Units with fewer than two values are not pairable and do not count. Returns ``nan`` when
    alpha is undefined (fewer than two pairable values, or no variation at all).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    x = np.asarray(data, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"data must be coders × units (2-D), got shape {x.shape}")
    present = ~np.isnan(x)
    domain = _small_domain(x, present) if level != "ratio" else None
    if domain is not None:
        # labels from a small set (the usual case): values × units counts from one bincount
        units, k = x.shape[1], domain.size
        code = np.where(present, x - domain[0], k).astype(np.intp)
        counts = np.bincount((code * units + np.arange(units)).ravel(), minlength=(k + 1) * units)
        counts = counts.reshape(k + 1, units)[:k].astype(float)
        n_c = (counts * (counts.sum(axis=0) >= 2)).sum(axis=1)  # pairable values per category
        scale = {"nominal": None, "interval": domain, "ordinal": np.cumsum(n_c) - n_c / 2.0}[level]
        n, observed, expected = _sums_from_counts(counts, scale)
        if n < 2:
            return float("nan")
    else:
        values, unit, m = _pairable(x)
        n = values.size
        if n < 2:
            return float("nan")
        if level == "ratio":
            observed, expected = _ratio_sums(values, unit, m)
        else:
            distinct, code, n_c = np.unique(values, return_inverse=True, return_counts=True)
            if level == "nominal":
                sq = _unit_sum_sq_counts(unit, code, m.size)
                observed = float(np.sum((m.astype(float) ** 2 - sq) / (m - 1)))
                expected = float(n) ** 2 - float(np.sum(n_c.astype(float) ** 2))
            else:
                scale = distinct if level == "interval" else np.cumsum(n_c) - n_c / 2.0  # ordinal: mid-ranks
                observed, expected = _interval_sums(scale[code], unit, m)
    if expected == 0:
        return float("nan")
    return 1.0 - (n - 1) * observed / expected


def alpha_interval(data, level: str = "nominal", *, n_boot: int = 1000, ci: float = 0.95,
                   seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of alpha, resampling units with replacement."""
    x = np.asarray(data, dtype=float)
    rng = np.random.default_rng(seed)
    stats = np.array([krippendorff_alpha(x[:, rng.integers(0, x.shape[1], x.shape[1])], level)
                      for _ in range(n_boot)])
    stats = stats[~np.isnan(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - ci) / 2.0 * 100
    lo, hi = np.percentile(stats, [tail, 100 - tail])
    return float(lo), float(hi)


def cohen_kappa(a, b) -> float:
    """Cohen's kappa of two equal-length label sequences (unweighted)."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"cohen_kappa needs two equal-length sequences, got {a.shape} and {b.shape}")
    if a.size == 0:
        return float("nan")
    _, codes = np.unique(np.concatenate([a, b]).astype(str), return_inverse=True)
    ca, cb = codes[:a.size], codes[a.size:]
    k = int(codes.max()) + 1
    p_o = float(np.mean(ca == cb))
    p_e = float(np.bincount(ca, minlength=k) @ np.bincount(cb, minlength=k)) / a.size ** 2
    if p_e == 1.0:
        return float("nan")
    return (p_o - p_e) / (1.0 - p_e)


def fleiss_kappa(counts) -> float:
    """Fleiss' kappa of an items × categories matrix of counts (same number of raters per item)."""
    c = np.asarray(counts, dtype=float)
    if c.ndim != 2 or c.shape[0] == 0:
        raise ValueError(f"counts must be items × categories, got shape {c.shape}")
    raters = c.sum(axis=1)
    if not np.allclose(raters, raters[0]) or raters[0] < 2:
        raise ValueError("fleiss_kappa needs the same number (at least 2) of ratings for every item")
    r = raters[0]
    p_item = (np.sum(c * c, axis=1) - r) / (r * (r - 1))
    p_cat = c.sum(axis=0) / c.sum()
    p_bar, p_e = float(p_item.mean()), float(np.sum(p_cat ** 2))
    if p_e == 1.0:
        return float("nan")
    return (p_bar - p_e) / (1.0 - p_e)
