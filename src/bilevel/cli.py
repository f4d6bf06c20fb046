"""Command line: ``bilevel list``, ``bilevel run EXPERIMENT --method M --seed S --out PATH``, ``bilevel check``
(the configuration, as the Snakefile checks it at parse time),
``bilevel data status`` (which official files are where), ``bilevel data fetch NAME [--download]`` and
``bilevel runtimes`` (the README's runtime column from a run's benchmark files)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_list(_args) -> int:
    from . import experiments, methods, problems

    print("methods:     " + ", ".join(methods.available()))
    print("problems:    " + ", ".join(problems.available()))
    print("experiments: " + ", ".join(experiments.available()))
    return 0


def _writable(out: str) -> str | None:
    """Why ``out`` (and its provenance file) cannot be written, or None: checked before a job runs, so that a
    read-only place fails at once rather than after the whole run."""
    import tempfile

    folder = Path(out).resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return f"cannot write --out {out}: {err.strerror or err} ({folder})"
    if Path(out).is_dir():
        return f"cannot write --out {out}: it is a directory"
    return None


def _cmd_check(args) -> int:
    from .experiments import ConfigError, check_config
    from .experiments.config import load_config

    try:
        config = check_config(load_config(*args.config, base=args.base))
    except ConfigError as err:
        print(f"bilevel: invalid configuration: {err}", file=sys.stderr)
        return 2
    experiments = config["experiments"]
    jobs = sum(len(e["methods"]) for e in experiments.values())
    print(f"configuration ok: {len(experiments)} experiments, {jobs} method entries")
    return 0


def _cmd_run(args) -> int:
    from .experiments import ConfigError, check_config
    from .experiments.config import load_config
    from .experiments.pipeline import execute_job

    try:
        config = check_config(load_config(*args.config, base=args.base))
        if args.experiment not in config.get("experiments", {}):
            raise ConfigError(f"experiments.{args.experiment}: not in the configuration")
        problem = _writable(args.out)
        if problem is not None:
            raise ConfigError(problem)
        rows = execute_job(config, args.experiment, args.method, args.seed, args.out, progress=not args.quiet)
    except (ConfigError, KeyError) as err:
        print(f"bilevel: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. the disk filled up while the job ran
        print(f"bilevel: cannot write {args.out}: {err.strerror or err}", file=sys.stderr)
        return 2
    statuses = ", ".join(sorted(rows["status"].unique()))
    print(f"wrote {args.out} ({len(rows)} rows, status: {statuses})")
    return 0


def _store(args):
    from . import data

    return data.DataStore(args.data_dir, args.seed_dir, mirrors=args.mirror, allow_download=getattr(args, "download", False))


def _cmd_data_status(args) -> int:
    """One line per registered file: where its verified copy is, or that it is missing (and why)."""
    from . import data

    store = _store(args)
    print(f"cache: {store.data_dir}; seed directories: {', '.join(map(str, store.seed_dirs)) or 'none'}")
    for name in data.available():
        spec = data.get(name)
        tag = f" (STAND-IN for {spec.stand_in_for})" if spec.stand_in_for else ""
        route = f"; offline route: {spec.offline}{' (exact)' if spec.offline_verified else ''}" if spec.offline else ""
        print(f"{name}{tag}{route}")
        for f in spec.split_files():
            found = store.find(f, copy=False)
            print(f"  {'ok     ' if found else 'missing'} {f.key}" + (f"  [{found.origin}]" if found else ""))
    for message in store.rejected:
        print(f"rejected: {message}")
    return 0


def _cmd_data_fetch(args) -> int:
    from . import data

    try:
        for name in args.names:
            ds = data.load(name, store=_store(args))
            print(f"{ds.label}: {ds.source}; shapes {ds.shapes()}")
            for loc in ds.files:
                print(f"  {loc.spec.key} sha256 {loc.sha256} [{loc.origin}]")
    except (data.DataError, KeyError) as err:
        print(f"bilevel: {err}", file=sys.stderr)
        return 2
    return 0


def _cmd_runtimes(args) -> int:
    from .experiments.runtimes import runtimes_markdown, update_readme

    if not Path(args.benchmarks).is_dir():
        print(f"bilevel: {args.benchmarks} not found (run the workflow first)", file=sys.stderr)
        return 2
    if args.readme is None:
        print(runtimes_markdown(args.benchmarks), end="")
        return 0
    try:
        update_readme(args.readme, args.benchmarks)
    except (OSError, ValueError) as err:
        print(f"bilevel: {err}", file=sys.stderr)
        return 2
    print(f"updated the runtime column of {args.readme} from {args.benchmarks}")
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
    p_run.add_argument("--config", action="append", default=[], metavar="FILE",
                       help="overlay merged over the default config, as snakemake --configfile (repeatable)")
    p_run.add_argument("--base", default=None, metavar="FILE",
                       help="the default config (default: the repository's config/config.yaml)")
    p_run.add_argument("--quiet", action="store_true", help="no progress lines")
    p_run.set_defaults(func=_cmd_run)
    p_check = sub.add_parser("check", help="check a configuration as the Snakefile does at parse time (file and "
                                           "line of a YAML error, the key of a bad value)")
    p_check.add_argument("--config", action="append", default=[], metavar="FILE",
                         help="overlay merged over the default config, as snakemake --configfile (repeatable)")
    p_check.add_argument("--base", default=None, metavar="FILE", help="the default config (default: config/config.yaml)")
    p_check.set_defaults(func=_cmd_check)
    p_data = sub.add_parser("data", help="datasets: status of the cache, fetch").add_subparsers(dest="data_command",
                                                                                                 required=True)
    for name, func, helptext in (("status", _cmd_data_status, "which official files are present, and where"),
                                 ("fetch", _cmd_data_fetch, "make datasets available (verified) and print their files")):
        p = p_data.add_parser(name, help=helptext)
        p.add_argument("--data-dir", default=None, help="cache (default: $BILEVEL_DATA_DIR, else data/)")
        p.add_argument("--seed-dir", action="append", default=[], help="read-only directory with official files")
        p.add_argument("--mirror", action="append", default=[], help="base URL tried before the official ones")
        p.set_defaults(func=func)
        if name == "fetch":
            p.add_argument("names", nargs="+", help="dataset names (bilevel data status lists them)")
            p.add_argument("--download", action="store_true", help="allow downloading missing official files")
    p_times = sub.add_parser("runtimes", help="runtimes from a run's benchmark files (print, or fill the README)")
    p_times.add_argument("--benchmarks", default="results/benchmarks", help="the run's benchmark directory")
    p_times.add_argument("--readme", default=None, help="rewrite this README's runtime column (between its markers)")
    p_times.set_defaults(func=_cmd_runtimes)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
