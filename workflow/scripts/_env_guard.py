"""Check that a rule's conda environment suffices, without conda: block imports of installed packages
that the rule's ``envs/*.yaml`` does not provide.

``snakemake --sdm conda`` cannot run where this artifact is built (no conda channels), so the smoke
workflow of the test command sets ``BILEVEL_CHECK_RULE_ENVS=1``. The Snakefile then publishes its rule
objects' environments (``bilevel.workflow.describe_rules``: Snakemake's own ``conda:``
values, functions of the experiment resolved per experiment) in ``BILEVEL_RULE_ENVS``, which every
job inherits, and every rule script imports only
distributions pinned in its rule's environment (and their dependencies, from the installed metadata)
plus the project and Snakemake. Other installed modules are hidden from every import finder: a rule
whose environment lacks a package it uses fails with ``ModuleNotFoundError`` (its log names the hidden
package and the environment file), and optional imports fall back as they would in that environment.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata as metadata
import re
import sys
from pathlib import Path

import yaml

# the project (imported from the source tree by _adapter) and Snakemake with its dependencies (a
# script's preamble reaches them through Snakemake's installation path, in any environment)
PROJECT, SNAKEMAKE = "bilevel", "snakemake"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def rule_env(rules: dict, rule: str, experiment: str | None = None) -> Path:
    """The environment file of ``rule`` (for ``experiment``, where the rule's environment depends on it)
    in ``rules``, ``bilevel.workflow.describe_rules``."""
    if rule not in rules or rules[rule]["conda"] is None:
        raise KeyError(f"rule {rule} declares no conda: environment")
    env = rules[rule]["conda"]
    if isinstance(env, dict):
        if experiment not in env:
            raise KeyError(f"rule {rule}: no environment for experiment {experiment!r}")
        env = env[experiment]
    return Path(env)


def env_packages(env_file: str | Path) -> set[str]:
    """The pip pins of an environment file, normalised names (pip options skipped)."""
    env = yaml.safe_load(Path(env_file).read_text())
    pip = next((d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d), [])
    return {_norm(spec.partition("==")[0]) for spec in pip if not spec.startswith("-")}


def closure(packages: set[str]) -> set[str]:
    """The packages and everything they require (non-optional), from the installed metadata."""
    seen, todo = set(), [_norm(p) for p in packages]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_norm(re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0]) for r in requires if "extra ==" not in r]
    return seen


class EnvironmentGuard:
    """Which top-level modules an environment hides: those of installed distributions outside ``allowed``."""

    def __init__(self, allowed: set[str], env_file: str | Path):
        self.allowed = allowed | {PROJECT} | closure({SNAKEMAKE})
        self.env_file = Path(env_file)
        self.owners = metadata.packages_distributions()
        self.reported: set[str] = set()

    def hides(self, name: str) -> bool:
        top = name.partition(".")[0]
        owners = self.owners.get(top)
        hidden = bool(owners) and not any(_norm(d) in self.allowed for d in owners)
        if hidden and top not in self.reported:
            self.reported.add(top)
            print(f"env guard: {top} (distribution {', '.join(sorted(set(owners)))}) is hidden: not in "
                  f"{self.env_file.name}", file=sys.stderr)
        return hidden


class _Filtered(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder that finds nothing the guard hides: importing such a module raises
    ``ModuleNotFoundError`` and ``importlib.util.find_spec`` returns None, as in the real environment."""

    def __init__(self, finder, guard: EnvironmentGuard):
        self.finder, self.guard = finder, guard

    def find_spec(self, name, path=None, target=None):
        if self.guard.hides(name):
            return None
        return self.finder.find_spec(name, path, target)

    def find_distributions(self, *args, **kwargs):
        """Installed-package metadata (``importlib.metadata``): the hidden distributions are absent."""
        if not hasattr(self.finder, "find_distributions"):
            return iter(())
        return (d for d in self.finder.find_distributions(*args, **kwargs)
                if _norm(d.metadata["Name"] or "") in self.guard.allowed)

    def invalidate_caches(self):
        if hasattr(self.finder, "invalidate_caches"):
            self.finder.invalidate_caches()


def install(rule: str, rules: dict, experiment: str | None = None) -> EnvironmentGuard:
    """Hide from every import finder what ``rule``'s environment lacks (modules imported before stay);
    ``rules``: ``bilevel.workflow.describe_rules`` (``BILEVEL_RULE_ENVS``)."""
    env = rule_env(rules, rule, experiment)
    guard = EnvironmentGuard(closure(env_packages(env)), env)
    sys.meta_path[:] = [_Filtered(f, guard) if hasattr(f, "find_spec") else f for f in sys.meta_path]
    return guard
