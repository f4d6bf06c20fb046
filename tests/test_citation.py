"""The archived artifact's metadata: CITATION.cff valid against the official CFF 1.2.0 schema, citing
the artifact and the three papers; LICENSE present and consistent with pyproject.toml."""

import importlib.util
import json
import tomllib
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]


def cff_schema() -> dict:
    """The CFF 1.2.0 JSON schema shipped by cffconvert (located, not imported: see requirements-nodeps.txt)."""
    spec = importlib.util.find_spec("cffconvert")
    assert spec is not None, "cffconvert is not installed: run scripts/setup.sh (requirements-nodeps.txt)"
    path = Path(spec.submodule_search_locations[0]) / "schemas" / "1.2.0" / "schema.json"
    return json.loads(path.read_text())


def test_citation_cff_is_valid_and_cites_the_three_papers():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    for key in ("date-released",):  # YAML turns dates into date objects; CFF wants the ISO string
        cff[key] = str(cff[key])
    jsonschema.Draft7Validator(cff_schema(), format_checker=jsonschema.FormatChecker()).validate(cff)
    titles = {ref["title"] for ref in cff["references"]}
    assert titles == {
        "ZOBA: An Efficient Single-loop Zeroth-order Bilevel Optimization Algorithm",
        "Stochastic Regret Guarantees for Online Zeroth- and First-Order Bilevel Optimization",
        "Second-Order Bilevel Optimization with Accelerated Convergence Rates",
    }
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert cff["version"] == pyproject["project"]["version"]
    assert cff["license"] == pyproject["project"]["license"]["text"] == "MIT"


def test_schema_rejects_a_broken_citation():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    del cff["authors"]
    errors = list(jsonschema.Draft7Validator(cff_schema()).iter_errors({**cff, "date-released": "2026-11-22"}))
    assert any("authors" in e.message for e in errors)


def test_license_is_mit():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted" in text
