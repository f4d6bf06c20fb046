"""Command line: ``bilevel list`` and ``bilevel run EXPERIMENT --method M --seed S --out PATH``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def _load_config(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise SystemExit(f"bilevel: config file {path} not found")
    with p.open() as fh:
        return yaml.safe_load(fh) or {}


def _cmd_list(_args) -> int:
    from . import experiments, methods, problems

    print("methods:     " + ", ".join(methods.available()))
    print("problems:    " + ", ".join(problems.available()))
    print("experiments: " + ", ".join(experiments.available()))
    return 0


def _cmd_run(args) -> int:
    from .experiments import ConfigError, check_config
    from .experiments.pipeline import execute_job

    config = _load_config(args.config)
    try:
        check_config(config)
        if args.experiment not in config.get("experiments", {}):
            raise ConfigError(f"experiments.{args.experiment}: not in {args.config}")
        rows = execute_job(config, args.experiment, args.method, args.seed, args.out, progress=not args.quiet)
    except (ConfigError, KeyError) as err:
        print(f"bilevel: {err}", file=sys.stderr)
        return 2
    statuses = ", ".join(sorted(rows["status"].unique()))
    print(f"wrote {args.out} ({len(rows)} rows, status: {statuses})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bilevel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list methods, problems and experiments").set_defaults(func=_cmd_list)
    p_run = sub.add_parser("run", help="run one (experiment, method, seed) job")
    p_run.add_argument("experiment")
    p_run.add_argument("--method", required=True, help="method label of the experiment's config")
    p_run.add_argument("--seed", type=int, required=True)
    p_run.add_argument("--out", required=True, help="CSV path (a .provenance.json is written beside it)")
    p_run.add_argument("--config", default="config/config.yaml")
    p_run.add_argument("--quiet", action="store_true", help="no progress lines")
    p_run.set_defaults(func=_cmd_run)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
