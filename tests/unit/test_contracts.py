"""Data contracts: the suites pass on good tables and fail on broken ones, with readable reports."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from ml.common.config import InputError
from ml.contracts import validate
from ml.data.acquire import acquire


@pytest.fixture(scope="module")
def acquired(tmp_path_factory, params):
    out = tmp_path_factory.mktemp("acq")
    acquire(["synthetic://?seed=5&n=120&image_size=32"], str(out), logical_date="2026-12-01", params=params)
    return out


def test_good_tables_pass(acquired, tmp_path):
    for table, suite in (("manifest.parquet", "manifest"), ("copy.parquet", "ad_copy")):
        r = validate(str(acquired / table), suite, str(tmp_path / suite))
        assert r["passed"], r["failed_expectations"]
        assert json.loads((tmp_path / suite / "validation.json").read_text())["passed"] is True
        assert "PASSED" in (tmp_path / suite / "validation.html").read_text()


@pytest.mark.parametrize("breakage, expectation", [
    (lambda df: df.assign(clicks=df.impressions + 1), "expect_column_pair_values_a_to_be_greater_than_b(impressions)"),
    (lambda df: pd.concat([df, df.head(1)]), "expect_column_values_to_be_unique(copy_variant_id)"),
    (lambda df: df.assign(industry="automotive"), "expect_column_values_to_be_in_set(industry)"),
    (lambda df: df.assign(headline="x" * 300), "expect_column_value_lengths_to_be_between(headline)"),
    (lambda df: df.drop(columns=["cta"]), "expect_table_columns_to_match_set()"),
])
def test_broken_copy_tables_fail(acquired, tmp_path, breakage, expectation):
    table = tmp_path / "broken.parquet"
    breakage(pd.read_parquet(acquired / "copy.parquet")).to_parquet(table)
    r = validate(str(table), "ad_copy", str(tmp_path / "v"))
    assert not r["passed"]
    assert expectation in r["failed_expectations"]
    assert "FAILED" in (tmp_path / "v" / "validation.html").read_text()


def test_validation_json_is_stable(acquired, tmp_path):
    validate(str(acquired / "copy.parquet"), "ad_copy", str(tmp_path / "a"))
    validate(str(acquired / "copy.parquet"), "ad_copy", str(tmp_path / "b"))
    a = json.loads((tmp_path / "a" / "validation.json").read_text())
    b = json.loads((tmp_path / "b" / "validation.json").read_text())
    a.pop("outputs"), b.pop("outputs")
    assert a == b


def test_unknown_suite(acquired, tmp_path):
    with pytest.raises(InputError, match="no data contract suite"):
        validate(str(acquired / "copy.parquet"), "nope", str(tmp_path))
