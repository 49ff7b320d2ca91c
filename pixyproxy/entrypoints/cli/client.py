"""The commands that talk to a running server (the base install: the client, no server libraries)."""

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from pixyproxy.client import DEFAULT_URL, URL_ENV, APIError, ImageDetail, PixyProxyClient, PixyProxyError

app = typer.Typer()
out = Console()
err = Console(stderr=True, soft_wrap=True)  # error lines stay whole for copying

Url = Annotated[
    str,
    typer.Option("--url", envvar=URL_ENV, help="The PixyProxy server.", show_default=True),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@contextlib.contextmanager
def _client(url: str) -> Iterator[PixyProxyClient]:
    """A client for the command; any error it raises is printed (the server's detail) and exits 1."""
    try:
        with PixyProxyClient(url) as client:
            yield client
    except APIError as exc:
        err.print(f"[red]error:[/red] {escape(exc.detail)}", highlight=False)
        where = f"HTTP {exc.status_code} {exc.code}" + (
            f", request id {exc.request_id}" if exc.request_id else ""
        )
        err.print(f"[dim]({escape(where)})[/dim]", highlight=False)
        raise typer.Exit(1) from exc
    except PixyProxyError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from exc
    except OSError as exc:  # writing the output file
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from exc


def _short(text: str, length: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1] + "…"


def _size(image: ImageDetail) -> str:
    actual = f"{image.width}x{image.height}"
    return actual if image.size in (None, actual) else f"{actual} (asked {image.size})"


def _detail_table(image: ImageDetail) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows = {
        "guid": str(image.guid),
        "prompt": image.prompt,
        "revised prompt": image.revised_prompt,
        "created": image.created_at.isoformat(timespec="seconds"),
        "model": image.model,
        "size": _size(image),
        "quality": image.quality,
        "bytes": f"{image.size_bytes:,}",
        "sha256": image.sha256,
        "usage": ", ".join(f"{k}={v}" for k, v in image.usage.items()) if image.usage else None,
    }
    for name, value in rows.items():
        if value is not None:
            table.add_row(name, Text(value))
    return table


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also save the PNG to this file.", dir_okay=False)
    ] = None,
    model: Annotated[str | None, typer.Option(help="Generator model (default: the server's).")] = None,
    size: Annotated[str | None, typer.Option(help="Image size such as 1024x1024.")] = None,
    quality: Annotated[str | None, typer.Option(help="Quality such as low, medium, high.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Reuse a key to get the first image back instead of paying again.")
    ] = None,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Generate an image from a prompt and store it on the server; a spinner shows the time it takes."""
    with _client(url) as client:
        started = time.monotonic()
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            progress.add_task(f"Generating “{escape(_short(prompt, 50))}”", total=None)
            image = client.generate(
                prompt, model=model, size=size, quality=quality, idempotency_key=idempotency_key
            )
        elapsed = time.monotonic() - started
        if output is not None:
            client.download(image.guid, output)
    if as_json:
        out.print_json(image.model_dump_json())
    else:
        err.print(f"[green]✓[/green] generated in {elapsed:.1f} s", highlight=False)
        out.print(_detail_table(image))
    if output is not None:
        err.print(f"saved {output}", highlight=False)


@app.command("list")
def list_images(
    limit: Annotated[int, typer.Option(min=0, help="Show at most this many, newest first (0: all).")] = 20,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """List stored images, newest first, as a table."""
    images: list[ImageDetail] = []
    with _client(url) as client:
        page_size = min(limit, 1000) if limit else 1000
        for image in client.list(page_size=page_size):
            images.append(image)
            if limit and len(images) >= limit:
                break
    if as_json:
        out.print_json(data=[image.model_dump(mode="json") for image in images])
        return
    if not images:
        err.print("no images yet")
        return
    # Fixed widths for the short columns, the rest for the prompt; size, bytes and model only where they
    # fit beside a readable prompt.
    model_width = min(24, max(len(image.model) for image in images))
    wide = out.width >= 36 + 16 + 9 + 9 + model_width + 30 + 12
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, expand=True)
    table.add_column("guid", no_wrap=True, width=36)
    table.add_column("created (UTC)", no_wrap=True, width=16)
    if wide:
        table.add_column("size", no_wrap=True, width=9)
        table.add_column("bytes", justify="right", no_wrap=True, width=9)
        table.add_column("model", no_wrap=True, width=model_width, overflow="ellipsis")
    table.add_column("prompt", overflow="ellipsis", no_wrap=True, ratio=1)
    for image in images:
        extra = [_size(image), f"{image.size_bytes:,}", Text(image.model)] if wide else []
        table.add_row(
            str(image.guid),
            image.created_at.strftime("%Y-%m-%d %H:%M"),
            *extra,
            Text(_short(image.prompt, 200)),
        )
    out.print(table)


@app.command()
def show(
    guid: Annotated[str, typer.Argument(help="The image's guid.")],
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Show one image's details."""
    with _client(url) as client:
        image = client.get(guid)
    if as_json:
        out.print_json(image.model_dump_json())
    else:
        out.print(_detail_table(image))


@app.command()
def download(
    guid: Annotated[str, typer.Argument(help="The image's guid.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to save it (default: ./{guid}.png).", dir_okay=False),
    ] = None,
    url: Url = DEFAULT_URL,
) -> None:
    """Download an image's PNG."""
    with _client(url) as client:
        target = client.download(guid, output or Path(f"{guid}.png"))
    err.print(f"saved {target} ({target.stat().st_size:,} bytes)", highlight=False)
