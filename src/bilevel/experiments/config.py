"""Semantic checks of a configuration, beyond its JSON schema; errors name the config key.

Called by the Snakefile at parse time (before any job starts) and by the CLI: every method label
must name a registered method whose parameters construct (so a negative step size or an unknown
parameter fails here), every problem must build its parameters, budgets must be positive.
"""

from __future__ import annotations

import copy
import inspect

from .. import methods as method_registry
from .. import problems as problem_registry


class ConfigError(ValueError):
    """Invalid configuration; the message starts with the offending config key."""


def _key(*parts) -> str:
    return ".".join(str(p) for p in parts)


def method_spec(exp_cfg: dict, label: str, phase: str | None = None) -> tuple[str, dict]:
    """Registry name and parameters of method ``label`` in an experiment (phase overrides applied)."""
    entry = exp_cfg["methods"][label]
    params = copy.deepcopy(entry.get("params", {}))
    if phase is not None:
        params.update(copy.deepcopy(exp_cfg.get(phase, {}).get("params", {})))
        params.update(copy.deepcopy(entry.get(f"{phase}_params", {})))
    return entry["method"], params


def _check_factory_params(factory, params: dict, key: str) -> None:
    accepted = set(inspect.signature(factory).parameters)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ConfigError(f"{key}: unknown parameter(s) {', '.join(unknown)}; accepted: {', '.join(sorted(accepted))}")
    if "seed" in params:
        raise ConfigError(f"{key}.seed: the problem instance is chosen by the experiment's seeds; remove this key")


def check_experiment(name: str, exp_cfg: dict, phases=("optimization",)) -> None:
    """Raise :class:`ConfigError` naming the key of the first invalid entry of an experiment."""
    from . import get as get_experiment

    try:
        experiment = get_experiment(name)
    except KeyError as err:
        raise ConfigError(f"experiments.{name}: {err.args[0]}") from None
    for key in experiment.requires:
        if key not in exp_cfg:
            raise ConfigError(f"{_key('experiments', name, key)}: required by this experiment")
    prob = exp_cfg.get("problem", {})
    if prob.get("name") not in problem_registry.available():
        raise ConfigError(f"{_key('experiments', name, 'problem', 'name')}: unknown problem {prob.get('name')!r}; "
                          f"available: {', '.join(problem_registry.available())}")
    _check_factory_params(problem_registry.get_factory(prob["name"]), prob.get("params", {}),
                          _key("experiments", name, "problem", "params"))
    for case, overrides in exp_cfg.get("cases", {}).items():
        _check_factory_params(problem_registry.get_factory(prob["name"]), overrides,
                              _key("experiments", name, "cases", case))
    places = [(("problem", "params"), prob.get("params", {}))] + \
        [(("cases", case), overrides) for case, overrides in exp_cfg.get("cases", {}).items()]
    for where, params in places:
        dataset = params.get("dataset")
        if dataset is not None:
            from .. import data

            if dataset not in data.available():
                raise ConfigError(f"{_key('experiments', name, *where, 'dataset')}: unknown dataset "
                                  f"{dataset!r}; available: {', '.join(data.available())}")
    if not exp_cfg.get("methods"):
        raise ConfigError(f"{_key('experiments', name, 'methods')}: at least one method is required")
    for label, entry in exp_cfg["methods"].items():
        mname = entry.get("method")
        if mname not in method_registry.available():
            raise ConfigError(f"{_key('experiments', name, 'methods', label, 'method')}: unknown method {mname!r}; "
                              f"available: {', '.join(method_registry.available())}")
        for phase in (None, *phases):
            mname, params = method_spec(exp_cfg, label, phase)
            try:
                method_registry.make(mname, **params)
            except (ValueError, TypeError) as err:
                where = "params" if phase is None else f"{phase}.params / {label}.{phase}_params"
                raise ConfigError(f"{_key('experiments', name, 'methods', label, where)}: {err}") from None
        if "grid" in entry:
            from .jobs import grid_cells

            mname, params = method_spec(exp_cfg, label)
            for cell, overrides in grid_cells(entry["grid"]):
                try:
                    method_registry.make(mname, **{**params, **overrides})
                except (ValueError, TypeError) as err:
                    raise ConfigError(f"{_key('experiments', name, 'methods', label, 'grid')} cell {cell!r}: {err}") from None
    budgets = [((phase,), exp_cfg.get(phase, {})) for phase in phases] + \
        [(("methods", label, "budget"), entry.get("budget", {})) for label, entry in exp_cfg["methods"].items()]
    for where, section in budgets:
        for budget in ("max_iters", "max_oracle_calls", "max_seconds", "eval_every"):
            if budget in section and not section[budget] > 0:
                raise ConfigError(f"{_key('experiments', name, *where, budget)}: must be > 0, got {section[budget]!r}")
    seeds = exp_cfg.get("seeds", [])
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"{_key('experiments', name, 'seeds')}: need a non-empty list of distinct seeds, got {seeds!r}")


def check_data(data_cfg: dict) -> None:
    """Dataset names, splits and stand-ins of the ``data`` section exist in the registry."""
    from .. import data

    def known(name, key):
        if name not in data.available():
            raise ConfigError(f"{key}: unknown dataset {name!r}; available: {', '.join(data.available())}")

    for i, entry in enumerate(data_cfg.get("datasets", [])):
        name, splits = (entry, None) if isinstance(entry, str) else (entry.get("name"), entry.get("splits"))
        known(name, f"data.datasets[{i}]")
        if splits is not None:
            bad = [s for s in splits if s not in data.get(name).files]
            if bad:
                raise ConfigError(f"data.datasets[{i}].splits: {name} has no split(s) {', '.join(bad)}; "
                                  f"splits: {', '.join(data.get(name).files)}")
    for i, name in enumerate(data_cfg.get("download", [])):
        known(name, f"data.download[{i}]")
    for official, chain in data_cfg.get("stand_ins", {}).items():
        known(official, f"data.stand_ins.{official}")
        for stand_in in [chain] if isinstance(chain, str) else chain:
            known(stand_in, f"data.stand_ins.{official}")
            spec = data.get(stand_in)
            if official not in spec.stands_in_for:
                raise ConfigError(f"data.stand_ins.{official}: {stand_in!r} is not a stand-in for {official!r} "
                                  f"(it stands in for {', '.join(spec.stands_in_for) or 'nothing'})")


def check_config(config: dict) -> dict:
    """Check every experiment of ``config`` and its data section; return it unchanged (for chaining)."""
    experiments = config.get("experiments")
    if not experiments:
        raise ConfigError("experiments: the configuration defines no experiment")
    for name, exp_cfg in experiments.items():
        check_experiment(name, exp_cfg)
    check_data(config.get("data", {}))
    from . import tables

    for i, name in enumerate(config.get("tables", [])):
        if name not in tables.available():
            raise ConfigError(f"tables[{i}]: unknown table {name!r}; available: {', '.join(tables.available())}")
    return config
