"""`runner.py`'s command line: materialize assets, run jobs, list assets and jobs.

Exit codes: 0 success; 1 an asset failed or was skipped; 2 bad config, arguments or names.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

from daybreak import demo, graph
from daybreak.config import ConfigError, Settings, load_settings
from daybreak.export_assets import ExportAssetError
from daybreak.logs import redact, setup_logging
from daybreak.materialize import format_summary, materialize, run_inputs

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        help="config file (default: $DAYBREAK_CONFIG, else ./daybreak.toml)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runner.py", description="daybreak: run data assets and jobs, and show what exists."
    )
    _common(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("materialize", help="run assets once, with the upstream assets they need")
    _common(p)
    p.add_argument("assets", nargs="+", metavar="ASSET", help="asset or group names")
    p.add_argument("--full", action="store_true", help="full refresh: resync the whole history")
    p.set_defaults(handler=_materialize)

    p = sub.add_parser("run", help="run a job (a named selection of assets) now")
    _common(p)
    p.add_argument("job", metavar="JOB")
    p.add_argument("--full", action="store_true", help="full refresh: resync the whole history")
    p.set_defaults(handler=_run_job)

    p = sub.add_parser("assets", help="list every asset with its group and upstream assets")
    _common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_assets)

    p = sub.add_parser("jobs", help="list the jobs declared in the config")
    _common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_jobs)
    return parser


def _execute(settings: Settings, names: list[str], full: bool) -> int:
    dr = graph.build_driver(settings)
    demo.ensure_demo_data(settings)
    assets = graph.catalogue(dr)
    plan = graph.with_upstream(assets, graph.select(assets, names))
    inputs = {"settings": settings, **run_inputs(full_refresh=full)}
    results = materialize(dr, assets, plan, inputs)
    print(format_summary(results))
    return EXIT_OK if all(r.status == "success" for r in results) else EXIT_FAILED


def _materialize(settings: Settings, args: argparse.Namespace) -> int:
    return _execute(settings, args.assets, args.full)


def _run_job(settings: Settings, args: argparse.Namespace) -> int:
    job = settings.jobs.get(args.job)
    if job is None:
        raise graph.SelectionError(
            f"unknown job {args.job!r} (jobs: {', '.join(settings.jobs) or 'none configured'})"
        )
    return _execute(settings, job.select, args.full)


def _assets(settings: Settings, args: argparse.Namespace) -> int:
    assets = graph.catalogue(graph.build_driver(settings))
    if args.json:
        print(json.dumps([a.as_json() for a in assets.values()], indent=2))
    else:
        for a in assets.values():
            upstream = ", ".join(a.upstream) or "-"
            print(f"{a.name:<32} {a.group:<28} <- {upstream}")
    return EXIT_OK


def _jobs(settings: Settings, args: argparse.Namespace) -> int:
    if args.json:
        print(
            json.dumps(
                {
                    name: {"description": j.description, "select": j.select}
                    for name, j in settings.jobs.items()
                },
                indent=2,
            )
        )
    else:
        for name, j in settings.jobs.items():
            print(f"{name:<32} {j.description}  [{', '.join(j.select)}]")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging()
    handler: Callable[[Settings, argparse.Namespace], int] = args.handler
    try:
        settings = load_settings(getattr(args, "config", None))
        redact.register(settings.secrets.values())
        return handler(settings, args)
    except (ConfigError, graph.SelectionError, ExportAssetError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        logging.getLogger(__name__).warning("interrupted")
        return 130
