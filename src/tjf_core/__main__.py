"""``python -m tjf_core render``: show what a job becomes in Kubernetes, without a cluster.

Reads one job as API JSON, or a jobs.yaml list, and prints the manifests tjf would apply.
Invalid input exits 1 with every problem on stderr, each naming its field.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tjf_core.convert import job_from_api, load_jobs_file
from tjf_core.errors import InvalidInputError, Problem, TjfError
from tjf_core.identity import ToolIdentity
from tjf_core.images import ImageCatalog
from tjf_core.model import JobSpec
from tjf_core.render import Manifest, ToolContext, render_job
from tjf_core.settings import IdentitySettings, RenderSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tjf_core", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser(
        "render",
        help="print the Kubernetes manifests of a job (API JSON) or of a jobs.yaml",
        description="Print the Kubernetes manifests of one job (API JSON) or a jobs.yaml list.",
    )
    render.add_argument("--tool", required=True, help="the tool that owns the jobs")
    render.add_argument("--uid", type=int, help="the tool's unix uid (pod security context)")
    render.add_argument("--images", type=Path, metavar="CATALOG.yaml",
                        help="image catalog to resolve image names (default: use names as given)")
    render.add_argument("--cronjob-api", choices=["batch/v1", "batch/v1beta1"],
                        default="batch/v1", help="CronJob API version (batch/v1beta1 before 1.21)")
    render.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml",
                        help="a YAML stream (default) or a JSON list")
    render.add_argument("file", help="the job file; - reads standard input")
    return parser


def _read_specs(text: str, *, catalog: ImageCatalog | None) -> list[JobSpec]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        document = None  # load_jobs_file reports the syntax error with its position
    if isinstance(document, dict):
        return [job_from_api(document)]
    return [entry.spec for entry in load_jobs_file(text, catalog=catalog)]


def _render_all(
    specs: Sequence[JobSpec], *, tool: ToolContext, settings: RenderSettings,
    catalog: ImageCatalog | None,
) -> list[Manifest]:
    manifests: list[Manifest] = []
    problems: list[Problem] = []
    for spec in specs:
        try:
            manifests.extend(render_job(spec, tool=tool, settings=settings, catalog=catalog))
        except InvalidInputError as error:
            prefix = spec.name if len(specs) > 1 else ""
            problems.extend(p.under(prefix) for p in error.problems)
    if problems:
        raise InvalidInputError(problems)
    return manifests


def _render(args: argparse.Namespace) -> int:
    source = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
    catalog = None
    if args.images is not None:
        catalog = ImageCatalog.from_yaml(args.images.read_text("utf-8"))
    identity = ToolIdentity.for_tool(args.tool, settings=IdentitySettings())
    settings = RenderSettings(cronjob_api_version=args.cronjob_api)
    specs = _read_specs(source, catalog=catalog)
    tool = ToolContext(identity=identity, uid=args.uid)
    manifests = _render_all(specs, tool=tool, settings=settings, catalog=catalog)
    if args.output == "json":
        json.dump(manifests, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        docs: list[Any] = manifests
        sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _render(args)
    except InvalidInputError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except TjfError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: cannot read {error.filename}: {error.strerror}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
