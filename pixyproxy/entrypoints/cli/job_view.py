"""`pixyproxy generate --async`: submit a generation job and show it live (rich) until it ends.

The job runs on the server; this only watches its event stream: a line for each change of status, the
job's bar filling with its progress (where the provider reports it, or as its images are made) with a
line at each quarter, and, where the generator streams previews (`--partial-images`), a bar per image
filling with each preview. Ctrl-C stops watching, not the job.
"""

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from pixyproxy.client import DoneEvent, Job, PartialImageEvent, PixyProxyClient, ProgressEvent, StatusEvent

STATUS_STYLE = {
    "queued": "yellow",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "canceled": "magenta",
}
MILESTONES = 4  # a line each time the progress passes a quarter: a log shows it without a line per step


def status_text(job: Job) -> str:
    style = STATUS_STYLE.get(job.status, "white")
    text = f"[{style}]{job.status}[/{style}]"
    if job.status == "running" and job.attempts > 1:
        text += f" (attempt {job.attempts})"
    return text


def percent(progress: float) -> str:
    return f"{int(progress * 100)}%"


def output_paths(output: Path, job: Job) -> list[Path]:
    """Where each image of the job goes: `output` for one image, `output-1`, `output-2`... for several
    (each with its image's extension unless `output` has one)."""
    paths = []
    for number, image in enumerate(job.images, 1):
        suffix = output.suffix if output.suffix else Path(image.filename).suffix
        stem = output.stem if output.suffix else output.name
        name = f"{stem}{suffix}" if len(job.images) == 1 else f"{stem}-{number}{suffix}"
        paths.append(output.with_name(name))
    return paths


def watch(client: PixyProxyClient, job: Job, partial_images: int, err: Console) -> Job:
    """Follow the job's events until it ends; answers the job as it ended."""
    short = str(job.id)[:8]
    count = int(job.request.get("n") or 1)
    final = job
    last_status = None
    milestone = 0
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        status_task = progress.add_task(f"job {short} {status_text(job)}", total=None)
        bars = {}
        if partial_images:
            for index in range(count):
                bars[index] = progress.add_task(f"  image {index + 1}: waiting", total=partial_images)

        def show(fraction: float | None) -> None:
            nonlocal milestone
            if fraction is None:
                return
            progress.update(status_task, total=1, completed=fraction)
            reached = int(fraction * MILESTONES)
            if milestone < reached < MILESTONES:
                progress.console.print(f"job {short} {percent(reached / MILESTONES)}", highlight=False)
            milestone = max(milestone, reached)

        for event in client.events(job):
            if isinstance(event, StatusEvent):
                final = event.job
                progress.update(status_task, description=f"job {short} {status_text(final)}")
                if final.status != last_status:
                    last_status = final.status
                    progress.console.print(f"job {short} {status_text(final)}", highlight=False)
                show(final.progress)
            elif isinstance(event, ProgressEvent):
                show(event.progress)
            elif isinstance(event, PartialImageEvent):
                bar = bars.get(event.image)
                size = f"{len(event.data) / 1024:.0f} KB"
                described = f"  image {event.image + 1}: preview {event.index + 1}/{partial_images} ({size})"
                if bar is not None:
                    progress.update(bar, completed=event.index + 1, description=described)
                progress.console.print(described.strip(), highlight=False)
            elif isinstance(event, DoneEvent):
                final = event.job
                break
    return final


def run(
    client: PixyProxyClient,
    prompt: str,
    *,
    n: int | None,
    webhook_url: str | None,
    partial_images: int | None,
    idempotency_key: str | None,
    options: dict[str, Any],
    err: Console,
) -> Job:
    """Submit the job and watch it; Ctrl-C leaves it running and says where to find it."""
    job = client.submit(
        prompt,
        n=n,
        webhook_url=webhook_url,
        partial_images=partial_images,
        idempotency_key=idempotency_key,
        **options,
    )
    err.print(f"submitted job {job.id}", highlight=False)
    return follow(client, job, partial_images or 0, err)


def follow(client: PixyProxyClient, job: Job, partial_images: int, err: Console) -> Job:
    """Watch the job until it ends and say how it ended; Ctrl-C leaves it running and says where it is."""
    started = time.monotonic()
    try:
        final = watch(client, job, partial_images, err)
    except KeyboardInterrupt:
        err.print(
            f"stopped watching; job {job.id} goes on (pixyproxy jobs watch {job.id}, or "
            f"GET {escape(client.base_url)}/image/jobs/{job.id})",
            highlight=False,
        )
        raise typer.Exit(130) from None
    elapsed = time.monotonic() - started
    if final.status == "succeeded":
        plural = "image" if len(final.images) == 1 else "images"
        err.print(
            f"[green]✓[/green] job {final.id} succeeded in {elapsed:.1f} s: {len(final.images)} {plural}",
            highlight=False,
        )
    elif final.status == "failed":
        error = final.error
        reason = f"{error.detail} ({error.code})" if error else "no reason given"
        err.print(f"[red]error:[/red] job {final.id} failed: {escape(reason)}", highlight=False)
    else:
        err.print(f"[red]error:[/red] job {final.id} was {final.status}", highlight=False)
    return final
