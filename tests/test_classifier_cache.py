"""The trained-classifier cache outlives jobs, so it follows the resume rule: weights are reused only under the
key that made them (dataset checksums, settings, training code, torch version); an unreadable or foreign file
is discarded and the classifier trained again."""

import logging

import pytest
import torch

from bilevel import classifiers, data

SPEC = {"hidden": 8, "epochs": 1, "rows": 300, "seed": 0}


@pytest.fixture(autouse=True)
def mnist_or_its_stand_in():
    """As the workflow's default config: official MNIST where cached, else the labelled stand-in mnist5k."""
    data.configure(stand_ins={"mnist": "mnist5k"})
    yield
    data.configure()


def test_cached_weights_are_reused_only_under_their_key(tmp_path, caplog):
    classifiers.configure(tmp_path)
    try:
        first = classifiers.classifier_for("mnist", SPEC)
        cache = tmp_path / f"{first['key'][:16]}.pt"
        assert cache.is_file() and classifiers.training_code() and len(first["key"]) == 64
        again = classifiers.classifier_for("mnist", SPEC)
        assert all(torch.equal(first["params"][k], again["params"][k]) for k in first["params"])
        assert again["record"]["train_seconds"] == first["record"]["train_seconds"], "read from the cache"

        cache.write_bytes(b"truncated")  # a killed write or a foreign file: trained again, not a crash
        with caplog.at_level(logging.WARNING, logger="bilevel.classifiers"):
            rebuilt = classifiers.classifier_for("mnist", SPEC)
        assert "is unreadable" in caplog.text and "training again" in caplog.text
        assert all(torch.equal(first["params"][k], rebuilt["params"][k]) for k in first["params"]), "deterministic"

        stored = torch.load(cache, weights_only=True)
        stored["record"]["key"] = "someone else's"
        torch.save(stored, cache)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="bilevel.classifiers"):
            classifiers.classifier_for("mnist", SPEC)
        assert "was stored under another key" in caplog.text
        other = classifiers.classifier_for("mnist", {**SPEC, "hidden": 9})
        assert other["key"] != first["key"], "other settings, other key"
    finally:
        classifiers.configure(None)
