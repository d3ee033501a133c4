"""What the commands print: tables that fit the terminal, job details, plans, documents.

Every function returns lines (or text) and prints nothing, so each is tested by itself.
Tables fit ``width`` columns (80 unless a wider terminal says otherwise): the columns that
can lose text (a command line, a status) are cut first, and a cut cell ends in ``...``.
Colour is applied only when asked (the caller knows whether the output is a terminal and
whether NO_COLOR is set), after padding, so styled and plain tables line up the same.

Machine-readable output (``-o json``/``-o yaml``) is the API's own JSON shape of a job
(:func:`~tjf_core.views.job_view`), rebuilt from what the client read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from tjf_http.client import RemoteJob

__all__ = [
    "FIELD_KEYS",
    "detail_lines",
    "document",
    "fit_table",
    "images_lines",
    "job_details",
    "job_document",
    "job_type",
    "jobs_table",
    "plan_lines",
    "quota_lines",
    "style",
]

_GAP = "  "
_CUT = "..."
#: Colours of the structured status (``status.short``).
_STATUS_COLOUR = {"succeeded": "green", "running": "green", "pending": "yellow",
                  "failed": "red", "unknown": "magenta"}
_ACTION_COLOUR = {"create": "green", "update": "yellow", "delete": "red", "unchanged": None}
#: Fields of the model as a jobs.yaml spells them (plans name what the user edits).
FIELD_KEYS = {"memory": "mem", "filelog": "no-filelog", "filelog_stdout": "filelog-stdout",
              "filelog_stderr": "filelog-stderr", "health_check": "health-check",
              "port_protocol": "port-protocol", "kind": "type (schedule/continuous)"}

Styler = Callable[[int, int, str], str]


def style(text: str, *, colour: bool, fg: str | None = None, bold: bool = False,
          dim: bool = False) -> str:
    """``text`` in colour when ``colour`` is on, else as it is."""
    if not colour or not (fg or bold or dim):
        return text
    return click.style(text, fg=fg, bold=bold or None, dim=dim or None)


def _cut(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(width - len(_CUT), 0)] + _CUT[: width]


def fit_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, width: int,
              shrink: Sequence[int] = (), minimum: int = 10,
              styler: Styler | None = None) -> list[str]:
    """A table of ``rows`` under ``headers`` in at most ``width`` columns.

    ``shrink`` lists the columns that may be cut, the first one cut first; ``styler(row,
    column, padded_text)`` colours a cell (row -1 is the header).
    """
    rows = [[" ".join(cell.split()) for cell in row] for row in rows]
    widths = [max([len(header), *(len(row[i]) for row in rows)])
              for i, header in enumerate(headers)]
    excess = sum(widths) + len(_GAP) * (len(widths) - 1) - width
    for index in shrink:
        if excess <= 0:
            break
        cut = min(excess, widths[index] - max(minimum, len(headers[index])))
        if cut > 0:
            widths[index] -= cut
            excess -= cut
    lines = []
    for row_index, row in enumerate([list(headers), *rows], start=-1):
        cells = []
        for column, cell in enumerate(row):
            text = _cut(cell, widths[column])
            if column < len(row) - 1:
                text = text.ljust(widths[column])
            cells.append(styler(row_index, column, text) if styler else text)
        lines.append(_GAP.join(cells).rstrip())
    return lines


# --- jobs ------------------------------------------------------------------------------------


def job_type(job: RemoteJob) -> str:
    spec = job.spec
    if spec.schedule is not None:
        return f"schedule: {spec.schedule}"
    if spec.kind.value == "continuous":
        replicas = spec.replicas or 1
        return "continuous" if replicas == 1 else f"continuous, {replicas} replicas"
    return "one-off"


def _status(job: RemoteJob) -> str:
    text = job.status_short
    if job.status.get("up_to_date") is False:
        text += " (out of date: load or run it again)"
    return text


def jobs_table(jobs: Sequence[RemoteJob], *, long: bool, width: int,
               colour: bool) -> list[str]:
    """The ``list`` table: name, type and status (``long``: image and command too)."""
    if long:
        headers = ["NAME", "TYPE", "IMAGE", "COMMAND", "STATUS"]
        rows = [[job.spec.name, job_type(job), job.spec.image, job.spec.command, _status(job)]
                for job in jobs]
        shrink: tuple[int, ...] = (3, 4, 2, 1)
    else:
        headers = ["NAME", "TYPE", "STATUS"]
        rows = [[job.spec.name, job_type(job), _status(job)] for job in jobs]
        shrink = (2, 1)
    status_column = len(headers) - 1

    def styler(row: int, column: int, text: str) -> str:
        if row < 0:
            return style(text, colour=colour, bold=True)
        if column == status_column:
            short = str(jobs[row].status.get("short"))
            return style(text, colour=colour, fg=_STATUS_COLOUR.get(short))
        return text

    return fit_table(headers, rows, width=width, shrink=shrink, styler=styler)


def _filelog(job: RemoteJob) -> str:
    spec = job.spec
    if not spec.filelog:
        return "off (output goes to the pod's log, kept until the pod is gone)"
    if spec.filelog_stdout == spec.filelog_stderr:
        return f"on: stdout and stderr to {spec.filelog_stdout}"
    return f"on: stdout to {spec.filelog_stdout}, stderr to {spec.filelog_stderr}"


def job_details(job: RemoteJob) -> list[tuple[str, str]]:
    """The ``show`` view: (label, value) pairs, only the ones that apply to this job."""
    spec, status = job.spec, job.status
    image = spec.image
    if job.image_state != "stable":
        image += f" ({job.image_state}: see the images command for current ones)"
    short = str(status.get("short") or "unknown")
    duration = status.get("duration")
    state = job.status_short + (f" ({short}, for {duration} s)" if duration is not None
                                else f" ({short})")
    pairs = [("Name", spec.name), ("Command", spec.command), ("Image", image),
             ("Type", job_type(job)), ("Status", state)]
    if isinstance(status.get("exit_code"), int):
        pairs.append(("Exit code", str(status["exit_code"])))
    pairs.extend(("Hint", message) for message in status.get("messages") or ())
    if status.get("up_to_date") is False:
        pairs.append(("Up to date", "no: the job's objects differ from its definition; "
                                    "`load` or `run` it again"))
    if spec.schedule is not None:
        if job.schedule_actual and job.schedule_actual != spec.schedule:
            pairs.append(("Runs at", job.schedule_actual))
        pairs.append(("Time zone", spec.timezone or "UTC"))
        if spec.concurrency is not None:
            pairs.append(("Concurrency", spec.concurrency.value))
        for label, key in (("Last run", "previous_schedule"), ("Next run", "next_schedule")):
            if status.get(key):
                pairs.append((label, str(status[key])))
    if spec.kind.value == "continuous":
        pairs.append(("Replicas", str(spec.replicas or 1)))
        if spec.port is not None:
            protocol = spec.port_protocol.value if spec.port_protocol else "tcp"
            pairs.append(("Port", f"{spec.port}/{protocol}"))
        if spec.health_check is not None:
            check = spec.health_check
            what = (f"script: {check.script}" if check.type.value == "script"
                    else f"http GET {check.path}")
            pairs.append(("Health check", what))
    pairs.append(("File log", _filelog(job)))
    pairs.append(("Emails", spec.emails.value))
    if spec.kind.value != "continuous":
        pairs.append(("Retry", str(spec.retry)))
    pairs.append(("Resources", f"memory {spec.memory}, cpu {spec.cpu}"))
    pairs.append(("Mount", spec.mount.value))
    if spec.timeout is not None:
        pairs.append(("Timeout", f"{spec.timeout} s"))
    pairs.append(("Details", job.status_long))
    return pairs


def detail_lines(pairs: Sequence[tuple[str, str]], *, width: int, colour: bool) -> list[str]:
    """``label: value`` lines, values wrapped under each other within ``width`` columns."""
    import textwrap

    label_width = max(len(label) for label, _ in pairs) + 2
    room = max(width - label_width, 20)
    lines = []
    for label, value in pairs:
        wrapped = textwrap.wrap(" ".join(value.split()), room, break_on_hyphens=False) or [""]
        head = style(f"{label}:".ljust(label_width), colour=colour, bold=True)
        lines.append(head + wrapped[0])
        lines.extend(" " * label_width + rest for rest in wrapped[1:])
    return lines


def job_document(job: RemoteJob) -> dict[str, Any]:
    """The job in the API's JSON shape (``job_view``)."""
    from tjf_core.convert import job_to_api

    view = job_to_api(job.spec)
    view["image_state"] = job.image_state
    if job.schedule_actual is not None:
        view["schedule_actual"] = job.schedule_actual
    view["status"] = dict(job.status)
    view["status_short"] = job.status_short
    view["status_long"] = job.status_long
    return view


def document(data: Any, *, form: str) -> str:
    """``data`` as JSON or YAML text (``form``), ending in a newline."""
    if form == "yaml":
        import yaml

        return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    import json

    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# --- plans, images, quota ----------------------------------------------------------------


def _changes(entry: Mapping[str, Any]) -> str:
    fields = [FIELD_KEYS.get(str(field), str(field)) for field in entry.get("changed_fields", ())]
    if fields:
        return ", ".join(fields)
    if entry.get("stale"):
        return "its objects are out of date"
    return ""


def plan_lines(plan: Mapping[str, Any], *, source: str, colour: bool) -> list[str]:
    """What ``load`` did or would do (``plan["dry_run"]``), one job a line, then a summary."""
    entries = plan.get("jobs", [])
    counts = plan.get("counts", {})
    dry = bool(plan.get("dry_run"))
    lines = []
    for entry in entries:
        action = str(entry["action"])
        shown = style(action.ljust(9), colour=colour, fg=_ACTION_COLOUR.get(action))
        detail = _changes(entry) if action == "update" else ""
        lines.append(f"  {shown}  {entry['name']}" + (f" ({detail})" if detail else ""))
    total = len(entries)
    if not plan.get("changed"):
        lines.append(f"No changes: the tool's jobs already match {source} "
                     f"({total} job{'s' if total != 1 else ''}).")
        return lines
    parts = [f"{counts.get(action, 0)} {word}" for action, word in (
        ("create", "to create" if dry else "created"),
        ("update", "to update" if dry else "updated"),
        ("delete", "to delete" if dry else "deleted"),
        ("unchanged", "unchanged")) if counts.get(action)]
    if dry:
        lines.append(f"Dry run: {', '.join(parts)}; nothing was changed.")
    else:
        lines.append(f"Done: {', '.join(parts)}.")
    return lines


def images_lines(images: Sequence[Mapping[str, str]], *, width: int, colour: bool) -> list[str]:
    rows = [[image["shortname"], image["image"]] for image in images]
    return fit_table(["NAME", "IMAGE"], rows, width=width, shrink=(1,),
                     styler=_header_styler(colour))


def _header_styler(colour: bool) -> Styler:
    def styler(row: int, column: int, text: str) -> str:
        return style(text, colour=colour, bold=True) if row < 0 else text

    return styler


def quota_lines(categories: Sequence[Mapping[str, Any]], *, width: int,
                colour: bool) -> list[str]:
    """One titled table per category of the quota."""
    lines: list[str] = []
    for category in categories:
        if lines:
            lines.append("")
        lines.append(style(str(category["name"]), colour=colour, bold=True))
        rows = [[str(item["name"]), _amount(item.get("limit")), _amount(item.get("used"))]
                for item in category.get("items", ())]
        table = fit_table(["RESOURCE", "LIMIT", "USED"], rows, width=width - 2, shrink=(0,))
        lines.extend("  " + line for line in table)
    return lines


def _amount(value: object) -> str:
    return "-" if value is None else str(value)
