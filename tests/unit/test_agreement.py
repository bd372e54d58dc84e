"""Agreement functions against test-only oracles (the krippendorff package, scikit-learn,
statsmodels) on many random inputs, and against published worked examples."""
from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from ml.labeling.agreement import LEVELS, alpha_interval, cohen_kappa, fleiss_kappa, krippendorff_alpha

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 coders × 12 units example
KRIPPENDORFF_2011 = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
])


@pytest.mark.parametrize("level,published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849),
                                             ("ratio", 0.797)])
def test_alpha_equals_the_published_worked_example(level, published):
    assert krippendorff_alpha(KRIPPENDORFF_2011, level) == pytest.approx(published, abs=5e-4)


def random_reliability(rng, distinct=None):
    coders, units = int(rng.integers(2, 8)), int(rng.integers(2, 80))
    values = int(rng.integers(2, 9)) if distinct is None else distinct
    data = rng.integers(1, values + 1, (coders, units)).astype(float)
    data[rng.random((coders, units)) < rng.uniform(0, 0.5)] = NAN
    return data


@pytest.mark.parametrize("level", LEVELS)
def test_alpha_equals_the_krippendorff_package_on_random_data(level):
    rng = np.random.default_rng(7)
    compared = 0
    for _ in range(300):
        data = random_reliability(rng)
        try:
            expected = krippendorff.alpha(data, level_of_measurement=level)
        except ValueError:  # the package refuses data with a single value; ours returns nan
            assert np.isnan(krippendorff_alpha(data, level))
            continue
        if np.isnan(expected):
            continue
        assert krippendorff_alpha(data, level) == pytest.approx(expected, abs=1e-9)
        compared += 1
    assert compared > 250


@pytest.mark.parametrize("level", ["interval", "ratio", "ordinal", "nominal"])
def test_alpha_with_many_distinct_real_values_equals_the_package(level):
    rng = np.random.default_rng(3)
    truth = rng.uniform(1, 100, 300)
    data = truth[None, :] + rng.normal(0, 8, (4, 300))
    data[rng.random(data.shape) < 0.1] = NAN
    assert krippendorff_alpha(data, level) == pytest.approx(krippendorff.alpha(data, level_of_measurement=level), abs=1e-9)


def test_alpha_edge_cases():
    assert np.isnan(krippendorff_alpha([[1, 1, 1], [1, 1, 1]]))            # no variation: undefined
    assert np.isnan(krippendorff_alpha([[1, NAN], [NAN, 2]]))              # nothing pairable
    assert krippendorff_alpha([[1, 2, 3, 1], [1, 2, 3, 1]]) == 1.0          # perfect agreement
    with pytest.raises(ValueError):
        krippendorff_alpha([1, 2, 3])
    with pytest.raises(ValueError):
        krippendorff_alpha([[1, 2], [1, 2]], "cardinal")


def test_bootstrap_interval_brackets_alpha_and_narrows_with_more_units():
    rng = np.random.default_rng(5)

    def sample(units):
        truth = rng.integers(0, 3, units)
        noisy = np.where(rng.random((4, units)) < 0.8, truth, rng.integers(0, 3, (4, units))).astype(float)
        return noisy

    small, large = sample(60), sample(1500)
    lo, hi = alpha_interval(small, n_boot=300, seed=1)
    assert lo < krippendorff_alpha(small) < hi
    lo2, hi2 = alpha_interval(large, n_boot=300, seed=1)
    assert lo2 < krippendorff_alpha(large) < hi2
    assert hi2 - lo2 < (hi - lo) / 2


def test_cohen_kappa_equals_scikit_learn_on_random_pairs():
    rng = np.random.default_rng(11)
    for _ in range(300):
        n, k = int(rng.integers(5, 200)), int(rng.integers(2, 6))
        a = rng.integers(0, k, n)
        b = np.where(rng.random(n) < rng.random(), a, rng.integers(0, k, n))
        labels_a, labels_b = [f"c{x}" for x in a], [f"c{x}" for x in b]
        expected = cohen_kappa_score(labels_a, labels_b)
        if np.isnan(expected):
            continue
        assert cohen_kappa(labels_a, labels_b) == pytest.approx(expected, abs=1e-9)


def test_cohen_kappa_worked_example():
    # 50 proposals: both yes 20, A yes B no 5, A no B yes 10, both no 15: kappa 0.4 (Wikipedia)
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4, abs=1e-12)
    with pytest.raises(ValueError):
        cohen_kappa(["a"], ["a", "b"])


FLEISS_EXAMPLE = [  # Fleiss (1971) as worked on Wikipedia: 10 items, 14 raters, 5 categories, kappa 0.210
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_worked_example_and_statsmodels():
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.2099, abs=1e-4)
    rng = np.random.default_rng(2)
    for _ in range(200):
        items, cats, raters = int(rng.integers(2, 60)), int(rng.integers(2, 6)), int(rng.integers(2, 9))
        counts = np.stack([np.bincount(rng.integers(0, cats, raters), minlength=cats) for _ in range(items)])
        expected = sm_fleiss(counts)
        if np.isfinite(expected):
            assert fleiss_kappa(counts) == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ValueError):
        fleiss_kappa([[1, 1], [2, 1]])  # unequal raters per item
