"""`pixyproxy jobs ...`: list generation jobs, show one, cancel, and watch one again (re-attach) until it
ends, saving its images as `generate --async` does."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from pixyproxy.client import DEFAULT_URL
from pixyproxy.entrypoints.cli import job_view
from pixyproxy.entrypoints.cli.client import (
    AsJson,
    Limit,
    Url,
    _client,
    _short,
    err,
    first,
    out,
    page_size,
    print_ended_job,
    save_job_images,
)

app = typer.Typer(help="Generation jobs: list, show, cancel, and watch one again until it ends.")


class Status(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"


JobId = Annotated[str, typer.Argument(metavar="JOB_ID", help="The job's id (from `submitted job ...`).")]


@app.command("list")
def list_jobs(
    status: Annotated[Status | None, typer.Option(help="Only jobs in this status.")] = None,
    limit: Limit = 20,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """List jobs (of your API key), newest first."""
    with _client(url) as client:
        jobs = first(client.jobs(status=status.value if status else None, page_size=page_size(limit)), limit)
    if as_json:
        out.print_json(data=[job.model_dump(mode="json") for job in jobs])
        return
    if not jobs:
        err.print("no jobs" + (f" {status.value}" if status else " yet"))
        return
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, expand=True)
    table.add_column("id", no_wrap=True, width=36)
    table.add_column("status", no_wrap=True, width=9)
    table.add_column("created (UTC)", no_wrap=True, width=16)
    table.add_column("images", justify="right", no_wrap=True, width=6)
    table.add_column("prompt", overflow="ellipsis", no_wrap=True, ratio=1)
    for job in jobs:
        table.add_row(
            str(job.id),
            job_view.status_text(job),
            job.created_at.strftime("%Y-%m-%d %H:%M"),
            f"{len(job.images)}/{job.request.get('n') or 1}",
            Text(_short(str(job.request.get("prompt", "")), 200)),
        )
    out.print(table)


@app.command()
def show(job_id: JobId, url: Url = DEFAULT_URL, as_json: AsJson = False) -> None:
    """Show a job: its status, its images once it has succeeded, why it failed."""
    with _client(url) as client:
        job = client.job(job_id)
    if as_json:
        out.print_json(job.model_dump_json())
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows = {
        "id": str(job.id),
        "status": job_view.status_text(job),
        "prompt": str(job.request.get("prompt", "")),
        "created": job.created_at.isoformat(timespec="seconds"),
        "finished": job.finished_at.isoformat(timespec="seconds") if job.finished_at else None,
        "attempts": str(job.attempts),
        "error": f"{job.error.detail} ({job.error.code})" if job.error else None,
    }
    for name, value in rows.items():
        if value is not None:
            table.add_row(name, value if name == "status" else Text(value))
    for number, image in enumerate(job.images, 1):
        table.add_row(f"image {number}", Text(str(image.guid) + (" (deleted)" if image.deleted else "")))
    out.print(table)


@app.command()
def cancel(
    job_ids: Annotated[list[str], typer.Argument(metavar="JOB_ID...", help="The jobs to cancel.")],
    url: Url = DEFAULT_URL,
) -> None:
    """Cancel queued or running jobs: the provider call stops and nothing more is stored."""
    with _client(url) as client:
        for job_id in job_ids:
            job = client.cancel(job_id)
            err.print(f"job {job.id} {job_view.status_text(job)}", highlight=False)


@app.command()
def watch(
    job_id: JobId,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Save the images once it succeeds: this name for one, name-1, name-2... for several.",
            dir_okay=False,
        ),
    ] = None,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Watch a job again (after Ctrl-C, or one another program submitted) until it ends, as
    `generate --async` shows it; exits 1 unless it succeeded."""
    with _client(url) as client:
        job = client.job(job_id)
        partial_images = int(job.request.get("partial_images") or 0)
        job = job_view.follow(client, job, partial_images, err)
        saved = save_job_images(client, job, output)
    print_ended_job(job, saved, as_json)
