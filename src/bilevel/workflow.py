"""Support of the Snakemake workflow (used by the Snakefile, never by the library): the package's path
for the jobs, and the workflow's rules as data.

``describe_rules`` reads Snakemake's own rule objects (their ``conda:`` environment, threads, resources,
``localrules``); a value that is a function of the wildcards (the job rule's environment and resources
come from its experiment) is given per experiment of the configuration. ``publish_rules`` hands that
description to the env guard of the test command's smoke run (``BILEVEL_CHECK_RULE_ENVS=1``: every job
inherits ``BILEVEL_RULE_ENVS``) and to the tests (``BILEVEL_DESCRIBE_RULES=<file>``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace


def export_package_path(src: str | Path) -> None:
    """Put the source tree first on the jobs' ``PYTHONPATH`` (inherited by every rule script, locally and
    on a cluster node, whose Snakemake parses the Snakefile again)."""
    src = str(src)
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != src]
    os.environ["PYTHONPATH"] = os.pathsep.join([src, *rest])


def _per_experiment(value, experiments, resolve=lambda v: v):
    if not callable(value):
        return resolve(value)
    return {e: resolve(value(SimpleNamespace(experiment=e))) for e in experiments}


def _resource(res, rule, experiments):
    """A Snakemake ``Resource``: its value, or per experiment when it is a function of the wildcards."""
    if not res.is_evaluable():
        return res.value
    context = {"input": [], "attempt": 1, "threads": 1, "rulename": rule.name, "async_run": False}
    return _per_experiment(lambda wc: res.evaluate(wc, **context).value, experiments)


def describe_rules(workflow, experiments) -> dict:
    """Per rule of ``workflow``: ``conda`` (absolute environment file, or experiment -> file), ``threads``,
    ``resources`` (name -> value, or experiment -> value), ``local`` (named by a ``localrules:``)."""
    described = {}
    for rule in workflow.rules:
        here = Path(rule.snakefile).parent
        conda = None if rule.conda_env is None else \
            _per_experiment(rule.conda_env, experiments, lambda p, here=here: str((here / p).resolve()))
        described[rule.name] = {
            "conda": conda,
            "threads": _resource(rule.resources["_cores"], rule, experiments),
            "resources": {k: _resource(v, rule, experiments) for k, v in rule.resources.items() if not k.startswith("_")},
            "local": rule.name in workflow._localrules,  # Snakemake keeps the localrules: directives here
        }
    return described


def publish_rules(workflow, experiments) -> None:
    """With ``BILEVEL_CHECK_RULE_ENVS=1`` or ``BILEVEL_DESCRIBE_RULES`` set: describe the rules, export the
    description as ``BILEVEL_RULE_ENVS`` (for the jobs' env guard) and write it to the named file."""
    target = os.environ.get("BILEVEL_DESCRIBE_RULES")
    if os.environ.get("BILEVEL_CHECK_RULE_ENVS") != "1" and not target:
        return
    text = json.dumps(describe_rules(workflow, list(experiments)))
    os.environ["BILEVEL_RULE_ENVS"] = text
    if target:
        Path(target).write_text(text)
