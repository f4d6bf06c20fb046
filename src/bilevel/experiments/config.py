"""Configuration: loading (a default merged with overlays) and semantic checks beyond the JSON schema.

**Loading.** ``config/config.yaml`` is the one place where every experiment is written (its problem,
methods and their parameters). ``config/paper.yaml`` and ``.test/config/config.yaml`` are overlays
that hold only what changes with scale (seeds, budgets, sizes, datasets, grids). They are merged
over the default as Snakemake merges config files (:func:`merge`: mappings key by key, any other
value replaces), then :func:`resolve` applies two conventions:

- a key set to ``null`` is removed (an overlay drops a default's method, case or parameter; the
  method's or problem's own default then applies);
- a method entry with ``enabled: false`` is defined but not run (the default config uses it for
  methods only paper scale affords; an overlay turns them on with ``enabled: true``).

**Checks.** Called by the Snakefile at parse time (before any job starts) and by the CLI: every
method label must name a registered method whose parameters construct (so a negative step size or an
unknown parameter fails here, with the limits the method classes declare), every problem must build
its parameters, budgets must be positive. Errors name the config key.

This module does not import the experiment registry (:mod:`bilevel.experiments` passes its lookup
in), so the package has no import cycle.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml

from .. import data
from . import tables

#: the repository's default configuration (a source checkout: src/bilevel/experiments/ -> root)
DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "config" / "config.yaml"
#: the JSON schema of a resolved configuration (the Snakefile validates against the same file)
SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


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


def grid_cells(grid: dict) -> list[tuple[str, dict]]:
    """The cells of a two-factor sweep ``{"rows": axis, "columns": axis}`` (an axis is ``{"params": [...],
    "values": [...]}``; every parameter of an axis takes the axis value): ``(name, parameter overrides)``
    in row-major order, named e.g. ``"beta=0.1, alpha=0.001"`` or ``"gamma=0.99, lam=eta=0.9"``."""
    def part(axis, value):
        return "=".join(axis["params"]) + f"={value:g}"

    rows, cols = grid["rows"], grid["columns"]
    return [(f"{part(rows, rv)}, {part(cols, cv)}", {**dict.fromkeys(rows["params"], rv), **dict.fromkeys(cols["params"], cv)})
            for rv in rows["values"] for cv in cols["values"]]


def merge(base: dict, overlay: Mapping) -> dict:
    """``overlay`` merged into ``base`` in place, as Snakemake merges config files: mappings key by key
    (new keys after the existing ones), any other value (lists included) replaces."""
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def resolve(config: dict, base: dict | None = None) -> dict:
    """Apply the overlay conventions in place: drop ``null`` keys (recursively) and method entries with
    ``enabled: false``, and remove the ``enabled`` keys. With ``base`` (the default config the overlays
    were merged over), a ``null`` must remove a key that ``base`` has: a misspelt name is an error, not a
    silent no-op. Returns ``config``."""
    def drop_nulls(node, known, path):
        if isinstance(node, dict):
            for key in [k for k, v in node.items() if v is None]:
                if base is not None and not (isinstance(known, dict) and key in known):
                    where = ".".join(map(str, (*path, key)))
                    raise ConfigError(f"{where}: null removes a key of the default configuration, which has no "
                                      f"{key!r} here (misspelt?)")
                del node[key]
            for key, value in node.items():
                drop_nulls(value, known.get(key) if isinstance(known, dict) else None, (*path, key))
        elif isinstance(node, list):
            for value in node:
                drop_nulls(value, None, path)

    drop_nulls(config, base, ())
    experiments = config.get("experiments")
    for name, exp_cfg in (experiments.items() if isinstance(experiments, dict) else ()):
        methods = exp_cfg.get("methods") if isinstance(exp_cfg, dict) else None
        if not isinstance(methods, dict):
            continue
        for label, entry in list(methods.items()):
            if not isinstance(entry, dict):
                continue
            enabled = entry.pop("enabled", True)
            if not isinstance(enabled, bool):
                raise ConfigError(f"experiments.{name}.methods.{label}.enabled: must be true or false, got {enabled!r}")
            if not enabled:
                del methods[label]
    return config


def _yaml_problem(err: yaml.YAMLError) -> str:
    """``line L, column C: what`` of a YAML error (1-based, as editors count), one line."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context, start = getattr(err, "context", None), getattr(err, "context_mark", None)
    started = f" ({context} at line {start.line + 1})" if context and start is not None else ""
    return f"{where}{problem}{started}"


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping from ``path``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(err)}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a configuration must be a mapping, got {type(loaded).__name__}")
    return loaded


def load_config(*overlays: str | Path, base: str | Path | None = None) -> dict:
    """The resolved configuration: ``base`` (default: the repository's ``config/config.yaml``) with each
    overlay file merged over it in order (:func:`merge`), then :func:`resolve`. This is what the
    Snakefile sees for ``snakemake --configfile OVERLAY ...`` (schema defaults aside)."""
    default = read_yaml(DEFAULT_CONFIG if base is None else base)
    config = copy.deepcopy(default)
    for overlay in overlays:
        merge(config, read_yaml(overlay))
    return resolve(config, default)


def _schema_error(error) -> str:
    """One line for a schema violation: the config key, then what is wrong and what is allowed (never the
    schema itself)."""
    where = ".".join(str(p) for p in error.absolute_path)
    instance, schema = error.instance, error.schema
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(k for k in instance if k not in allowed)
        key = ".".join(filter(None, (where, str(extra[0]) if extra else "")))
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return f"{key}: unknown key{hint}"
    if error.validator == "enum":
        return f"{where}: {instance!r} is not one of {', '.join(map(repr, error.validator_value))}"
    if error.validator == "required":
        return f"{where or '(top level)'}: {error.message}"
    text = error.message if len(error.message) <= 200 else error.message[:200] + "..."
    return f"{where or '(top level)'}: {text}"


def validate_schema(config: dict, schema_path: str | Path = SCHEMA) -> dict:
    """Raise :class:`ConfigError` naming the key of the first violation (in document order) of the JSON
    schema that the Snakefile also validates against; return ``config``. A bool is never accepted where
    the schema asks for a number or an integer."""
    import jsonschema

    path = Path(schema_path)
    if not path.is_file():
        raise ConfigError(f"configuration schema {path} not found (a source checkout has it)")
    schema = yaml.safe_load(path.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise ConfigError(_schema_error(jsonschema.exceptions.best_match(errors) if len(errors) > 1 and
                                        len({tuple(e.absolute_path) for e in errors}) == 1 else errors[0]))
    return config


def _check_factory_params(factory, params: dict, key: str) -> None:
    accepted = set(inspect.signature(factory).parameters)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ConfigError(f"{key}: unknown parameter(s) {', '.join(unknown)}; accepted: {', '.join(sorted(accepted))}")
    if "seed" in params:
        raise ConfigError(f"{key}.seed: the problem instance is chosen by the experiment's seeds; remove this key")


def _check_problem_values(name: str, places: list[tuple[tuple, dict]], base: dict, prefix: tuple) -> None:
    """The problem's declared limits (the same ones its factory checks, :mod:`bilevel.limits`) on its
    parameters and on each override merged over them; the error names the key where the value was set."""
    from ..limits import ParameterError
    from ..problems import registry as problem_registry

    for where, overrides in places:
        try:
            problem_registry.check_params(name, {**base, **overrides})
        except ParameterError as err:
            origin = where if err.param in overrides else ("problem", "params")
            raise ConfigError(f"{_key(*prefix, *origin, err.param)}: {err.requirement} (problem {name}), "
                              f"got {err.value!r}") from None


def check_experiment(name: str, exp_cfg: dict, experiment, phases=("optimization",)) -> None:
    """Raise :class:`ConfigError` naming the key of the first invalid entry of experiment ``name``
    (``experiment``: its registered :class:`~bilevel.experiments.base.Experiment`)."""
    from .. import methods as method_registry  # imported here: the bookkeeping jobs import this module without torch
    from .. import problems as problem_registry

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
    tuning_problem = exp_cfg.get("tuning", {}).get("problem")
    if tuning_problem:
        _check_factory_params(problem_registry.get_factory(prob["name"]), tuning_problem,
                              _key("experiments", name, "tuning", "problem"))
        places.append((("tuning", "problem"), tuning_problem))
    _check_problem_values(prob["name"], places, prob.get("params", {}), ("experiments", name))
    for where, params in places:
        dataset = params.get("dataset")
        if dataset is not None:
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
            mname, params = method_spec(exp_cfg, label)
            for cell, overrides in grid_cells(entry["grid"]):
                try:
                    method_registry.make(mname, **{**params, **overrides})
                except (ValueError, TypeError) as err:
                    raise ConfigError(f"{_key('experiments', name, 'methods', label, 'grid')} cell {cell!r}: {err}") from None
    budgets = [((phase,), exp_cfg.get(phase, {})) for phase in phases] + \
        [(("methods", label, "budget"), entry.get("budget", {})) for label, entry in exp_cfg["methods"].items()]
    for where, section in budgets:
        for budget in ("max_iters", "max_oracle_calls", "max_function_evals", "max_seconds", "eval_every"):
            if budget in section and not section[budget] > 0:
                raise ConfigError(f"{_key('experiments', name, *where, budget)}: must be > 0, got {section[budget]!r}")
    seeds = exp_cfg.get("seeds", [])
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"{_key('experiments', name, 'seeds')}: need a non-empty list of distinct seeds, got {seeds!r}")


def check_data(data_cfg: dict) -> None:
    """Dataset names, splits and stand-ins of the ``data`` section exist in the registry."""
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


def check_config(config: dict, get_experiment: Callable[[str], object]) -> dict:
    """Check ``config`` against the schema (:func:`validate_schema`), then every experiment of it
    (``get_experiment(name)``: its registered experiment, KeyError when unknown) and its data section;
    return it unchanged (for chaining)."""
    validate_schema(config)
    experiments = config.get("experiments")
    if not experiments:
        raise ConfigError("experiments: the configuration defines no experiment")
    for name, exp_cfg in experiments.items():
        try:
            experiment = get_experiment(name)
        except KeyError as err:
            raise ConfigError(f"experiments.{name}: {err.args[0]}") from None
        check_experiment(name, exp_cfg, experiment)
    check_data(config.get("data", {}))
    for i, name in enumerate(config.get("tables", [])):
        if name not in tables.available():
            raise ConfigError(f"tables[{i}]: unknown table {name!r}; available: {', '.join(tables.available())}")
    return config
