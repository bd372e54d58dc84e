"""Perturbations of ad copy that must not change its scores: another product of the same
industry, another price (the invariance tests of evaluation)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

PRICE = re.compile(r"\d+\.99")


def perturb(frame: pd.DataFrame, products: dict[str, list[str]], rng: np.random.Generator) -> pd.DataFrame:
    """Every row with its product swapped for another of its industry and its price redrawn."""
    out = frame.copy()
    for i, row in out.iterrows():
        choices = products.get(row["industry"], [])
        present = [p for p in choices if re.search(rf"\b{re.escape(p)}\b", f"{row['headline']} {row['body']}")]
        if present and len(choices) > 1:
            other = str(rng.choice([p for p in choices if p != present[0]]))
            for col in ("headline", "body"):
                out.at[i, col] = re.sub(rf"\b{re.escape(present[0])}\b", other, str(row[col]))
        out.at[i, "body"] = PRICE.sub(lambda m: f"{int(rng.integers(29, 899))}.99", str(out.at[i, "body"]))
    return out
