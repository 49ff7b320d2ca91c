"""The commands that talk to a running server (the base install: the client, no server libraries)."""

import contextlib
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from pixyproxy.client import DEFAULT_URL, URL_ENV, APIError, ImageDetail, Job, PixyProxyClient, PixyProxyError

app = typer.Typer()
T = TypeVar("T")
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


def _format(image: ImageDetail) -> str:
    made = image.output_format or "png"
    return made if image.output_compression is None else f"{made}, compression {image.output_compression}"


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
        "format": _format(image),
        "background": image.background,
        "moderation": image.moderation,
        "bytes": f"{image.size_bytes:,}",
        "sha256": image.sha256,
        "usage": ", ".join(f"{k}={v}" for k, v in image.usage.items()) if image.usage else None,
        "edit of": str(image.parent_guid) if image.parent_guid else None,
        "mask": str(image.mask_guid) if image.mask_guid else None,
        "references": ", ".join(str(g) for g in image.reference_guids) if image.reference_guids else None,
    }
    for name, value in rows.items():
        if value is not None:
            table.add_row(name, Text(value))
    return table


class Background(StrEnum):
    auto = "auto"
    transparent = "transparent"
    opaque = "opaque"


class Format(StrEnum):
    png = "png"
    webp = "webp"
    jpeg = "jpeg"


class Moderation(StrEnum):
    auto = "auto"
    low = "low"


# The file extension of each format (the server names its files the same way), and back.
EXTENSIONS = {"png": ".png", "webp": ".webp", "jpeg": ".jpg", "avif": ".avif"}
SUFFIX_FORMATS = {".png": "png", ".webp": "webp", ".jpg": "jpeg", ".jpeg": "jpeg", ".avif": "avif"}

Output = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Also save the image to this file; a name without an image extension gets the format's "
        "(out -> out.webp).",
        dir_okay=False,
    ),
]
Model = Annotated[str | None, typer.Option(help="Generator model (default: the server's).")]
Size = Annotated[str | None, typer.Option(help="auto or WIDTHxHEIGHT such as 1024x1024.")]
Quality = Annotated[str | None, typer.Option(help="Quality such as low, medium, high.")]
BackgroundOption = Annotated[
    Background | None, typer.Option("--background", help="transparent needs --format png or webp.")
]
FormatOption = Annotated[
    Format | None, typer.Option("--format", help="The format the image is made and stored in (default png).")
]
Compression = Annotated[
    int | None, typer.Option("--compression", min=0, max=100, help="0-100, for webp and jpeg only.")
]
ModerationOption = Annotated[
    Moderation | None, typer.Option("--moderation", help="The provider's filtering level.")
]
NegativePrompt = Annotated[
    str | None,
    typer.Option(
        "--negative-prompt",
        metavar="TEXT",
        help="What not to draw, for models that take one (GET /models lists them); others refuse it.",
    ),
]
IdempotencyKey = Annotated[
    str | None, typer.Option(help="Reuse a key to get the first image back instead of paying again.")
]


def _planned_output(output: Path | None, output_format: Format | None) -> Path | None:
    """Refuse, before anything is generated (and paid for), a file name whose extension says another
    format than the one asked for."""
    if output is None:
        return None
    expected = output_format.value if output_format is not None else "png"
    named = SUFFIX_FORMATS.get(output.suffix.lower())
    if named is not None and named != expected:
        raise typer.BadParameter(
            f"{output.name} names a {named} file but the image will be {expected}: pass --format {named} "
            f"or save it as {output.with_suffix(EXTENSIONS[expected]).name}",
            param_hint="'--output' / '-o'",
        )
    return output


def _with_extension(output: Path, filename: str) -> Path:
    """`output` as given when it has an image extension, else with the stored image's own."""
    if output.suffix.lower() in SUFFIX_FORMATS:
        return output
    return output.with_name(output.name + Path(filename).suffix)


def _options(
    model: str | None,
    size: str | None,
    quality: str | None,
    background: Background | None,
    output_format: Format | None,
    compression: int | None,
    moderation: Moderation | None = None,
    negative_prompt: str | None = None,
) -> dict[str, Any]:
    options = {
        "model": model,
        "size": size,
        "quality": quality,
        "background": background.value if background else None,
        "output_format": output_format.value if output_format else None,
        "output_compression": compression,
        "negative_prompt": negative_prompt,
    }
    if moderation is not None:  # generate only: edits take none
        options["moderation"] = moderation.value
    return options


def _make(
    url: str, doing: str, output: Path | None, as_json: bool, call: Callable[[PixyProxyClient], ImageDetail]
) -> None:
    """Run a generating call under a spinner, save the image if asked, print its details."""
    saved = None
    with _client(url) as client:
        started = time.monotonic()
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            progress.add_task(doing, total=None)
            image = call(client)
        elapsed = time.monotonic() - started
        if output is not None:
            saved = client.download(image.guid, _with_extension(output, image.filename))
    if as_json:
        out.print_json(image.model_dump_json())
    else:
        verb = "edited" if image.parent_guid is not None else "generated"
        err.print(f"[green]✓[/green] {verb} in {elapsed:.1f} s", highlight=False)
        out.print(_detail_table(image))
    if saved is not None:
        err.print(f"saved {saved}", highlight=False)


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    output: Output = None,
    model: Model = None,
    size: Size = None,
    quality: Quality = None,
    background: BackgroundOption = None,
    output_format: FormatOption = None,
    compression: Compression = None,
    moderation: ModerationOption = None,
    negative_prompt: NegativePrompt = None,
    idempotency_key: IdempotencyKey = None,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
    as_job: Annotated[
        bool,
        typer.Option("--async", help="Submit a job and show its live status; the server makes it."),
    ] = False,
    n: Annotated[int | None, typer.Option("-n", min=1, max=10, help="With --async: how many images.")] = None,
    partial_images: Annotated[
        int | None,
        typer.Option(min=1, max=3, help="With --async: previews per image, where the generator streams."),
    ] = None,
    webhook_url: Annotated[
        str | None, typer.Option(help="With --async: a URL the server POSTs to (signed) when the job ends.")
    ] = None,
) -> None:
    """Generate an image from a prompt and store it on the server; a spinner shows the time it takes.
    With --async it is a job (up to 10 images): its status, and previews where they stream, show live."""
    output = _planned_output(output, output_format)
    options = _options(
        model, size, quality, background, output_format, compression, moderation, negative_prompt
    )
    if not as_job and (n is not None or partial_images is not None or webhook_url is not None):
        raise typer.BadParameter(
            "-n, --partial-images and --webhook-url go with --async", param_hint="--async"
        )
    if as_job:
        _make_job(url, prompt, output, as_json, n, partial_images, webhook_url, idempotency_key, options)
        return
    _make(
        url,
        f"Generating “{escape(_short(prompt, 50))}”",
        output,
        as_json,
        lambda client: client.generate(prompt, idempotency_key=idempotency_key, **options),
    )


def _make_job(
    url: str,
    prompt: str,
    output: Path | None,
    as_json: bool,
    n: int | None,
    partial_images: int | None,
    webhook_url: str | None,
    idempotency_key: str | None,
    options: dict[str, Any],
) -> None:
    """`generate --async`: the job's live view is in job_view.py."""
    from pixyproxy.entrypoints.cli import job_view

    with _client(url) as client:
        job = job_view.run(
            client,
            prompt,
            n=n,
            webhook_url=webhook_url,
            partial_images=partial_images,
            idempotency_key=idempotency_key,
            options=options,
            err=err,
        )
        saved = save_job_images(client, job, output)
    print_ended_job(job, saved, as_json)


def save_job_images(client: PixyProxyClient, job: Job, output: Path | None) -> list[Path]:
    """A succeeded job's images saved as `output` says (several: `output-1`, `output-2`...)."""
    from pixyproxy.entrypoints.cli import job_view

    if job.status != "succeeded" or output is None:
        return []
    paths = job_view.output_paths(output, job)
    return [client.download(image.guid, path) for image, path in zip(job.images, paths, strict=True)]


def print_ended_job(job: Job, saved: list[Path], as_json: bool) -> None:
    """The ended job's images (or the job as JSON); exits 1 unless it succeeded."""
    if as_json:
        out.print_json(job.model_dump_json())
    elif job.status == "succeeded":
        for image in job.images:
            out.print(_detail_table(image))
    for path in saved:
        err.print(f"saved {path}", highlight=False)
    if job.status != "succeeded":
        raise typer.Exit(1)


@app.command()
def edit(
    guid: Annotated[str, typer.Argument(help="The stored image to edit (it stays as it is).")],
    prompt: Annotated[str, typer.Argument(help="What to change.")],
    mask: Annotated[
        str | None,
        typer.Option(
            metavar="GUID",
            help="The guid of a stored PNG of the image's size whose fully transparent pixels mark what "
            "may change.",
        ),
    ] = None,
    references: Annotated[
        list[str] | None,
        typer.Option(
            "--reference",
            metavar="GUID",
            help="The guid of another stored image to give the model (repeat, up to 15).",
        ),
    ] = None,
    output: Output = None,
    model: Model = None,
    size: Size = None,
    quality: Quality = None,
    background: BackgroundOption = None,
    output_format: FormatOption = None,
    compression: Compression = None,
    negative_prompt: NegativePrompt = None,
    idempotency_key: IdempotencyKey = None,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Make a new image from a stored one as the prompt says; its details name the image it came from.
    The options are generate's but --moderation (the Images API's edits have none)."""
    output = _planned_output(output, output_format)
    options = _options(model, size, quality, background, output_format, compression, None, negative_prompt)
    _make(
        url,
        f"Editing {escape(guid[:8])} with “{escape(_short(prompt, 40))}”",
        output,
        as_json,
        lambda client: client.edit(
            guid,
            prompt,
            mask=mask,
            references=[*references] if references else None,
            idempotency_key=idempotency_key,
            **options,
        ),
    )


Limit = Annotated[int, typer.Option(min=0, help="Show at most this many, newest first (0: all).")]
ModelFilter = Annotated[str | None, typer.Option("--model", help="Only images made by this model.")]
After = Annotated[
    str | None,
    typer.Option(
        "--after", metavar="TIME", help="Only images made after this RFC 3339 time (2026-11-24T12:00:00Z)."
    ),
]
Before = Annotated[
    str | None, typer.Option("--before", metavar="TIME", help="Only images made before this RFC 3339 time.")
]


@app.command("list")
def list_images(
    query: Annotated[
        str | None,
        typer.Option("--query", "-q", help="Only images whose prompt has every one of these words."),
    ] = None,
    model: ModelFilter = None,
    after: After = None,
    before: Before = None,
    limit: Limit = 20,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """List stored images, newest first, as a table; -q, --model, --after and --before narrow it."""
    _print_images(url, limit, as_json, q=query, model=model, created_after=after, created_before=before)


@app.command()
def search(
    words: Annotated[str, typer.Argument(help="Words of the prompt, each required (any case or accent).")],
    model: ModelFilter = None,
    after: After = None,
    before: Before = None,
    limit: Limit = 20,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Find stored images whose prompt has every word (any case or accent), newest first."""
    _print_images(url, limit, as_json, q=words, model=model, created_after=after, created_before=before)


def page_size(limit: int) -> int:
    """Pages as large as `limit` needs (0: all), within the server's maximum."""
    return min(limit, 1000) if limit else 1000


def first(items: Iterable[T], limit: int) -> list[T]:
    """The first `limit` items (0: all); a lazy listing fetches no page beyond them."""
    return list(itertools.islice(items, limit or None))


def _print_images(url: str, limit: int, as_json: bool, **filters: str | None) -> None:
    with _client(url) as client:
        images = first(client.list(page_size=page_size(limit), **filters), limit)
    if as_json:
        out.print_json(data=[image.model_dump(mode="json") for image in images])
        return
    if not images:
        err.print("no images match" if any(filters.values()) else "no images yet")
        return
    out.print(_images_table(images))


def _images_table(images: list[ImageDetail]) -> Table:
    """Fixed widths for the short columns, the rest for the prompt; size, bytes and model only where they
    fit beside a readable prompt."""
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
        extra: list[str | Text] = [_size(image), f"{image.size_bytes:,}", Text(image.model)] if wide else []
        table.add_row(
            str(image.guid),
            image.created_at.strftime("%Y-%m-%d %H:%M"),
            *extra,
            Text(_short(image.prompt, 200)),
        )
    return table


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


class VariantFormat(StrEnum):
    png = "png"
    webp = "webp"
    jpeg = "jpeg"
    avif = "avif"


@app.command()
def download(
    guid: Annotated[str, typer.Argument(help="The image's guid.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to save it (default: ./{guid}.png, .webp or .jpg as stored, {guid}-w{width} for a "
            "narrower variant); a name without an image extension gets the image's.",
            dir_okay=False,
        ),
    ] = None,
    width: Annotated[
        int | None,
        typer.Option(help="A smaller variant: 64, 128, 256, 512 or 1024 pixels wide (never enlarged)."),
    ] = None,
    variant_format: Annotated[
        VariantFormat | None,
        typer.Option("--format", help="A variant in this format instead of the stored one."),
    ] = None,
    url: Url = DEFAULT_URL,
) -> None:
    """Download an image's bytes, in the format it was made in, or a variant (--width, --format)."""
    fmt = variant_format.value if variant_format else None
    with _client(url) as client:
        if output is None or output.suffix.lower() not in SUFFIX_FORMATS:
            filename = _variant_name(client.get(guid).filename, width, fmt)
            output = Path(filename) if output is None else _with_extension(output, filename)
        elif fmt is not None and SUFFIX_FORMATS[output.suffix.lower()] != fmt:
            raise typer.BadParameter(
                f"{output.name} names a {SUFFIX_FORMATS[output.suffix.lower()]} file but --format is {fmt}",
                param_hint="'--output' / '-o'",
            )
        target = client.download(guid, output, width=width, format=fmt)
    err.print(f"saved {target} ({target.stat().st_size:,} bytes)", highlight=False)


def _variant_name(filename: str, width: int | None, fmt: str | None) -> str:
    """The stored file name, with `-w{width}` and the variant format's extension where asked."""
    name = Path(filename)
    stem = f"{name.stem}-w{width}" if width is not None else name.stem
    return stem + (EXTENSIONS[fmt] if fmt is not None else name.suffix)


@app.command()
def delete(
    guids: Annotated[list[str], typer.Argument(metavar="GUID...", help="The images to delete.")],
    url: Url = DEFAULT_URL,
) -> None:
    """Delete images: their details, their bytes and every variant. There is no undo."""
    with _client(url) as client:
        for guid in guids:
            client.delete(guid)
            err.print(f"deleted {guid}", highlight=False)


@app.command()
def usage(
    since: Annotated[
        str | None,
        typer.Option(
            metavar="TIME", help="Start, inclusive: 2026-11-24 or 2026-11-24T00:00:00Z (default: today)."
        ),
    ] = None,
    until: Annotated[str | None, typer.Option(metavar="TIME", help="End, exclusive (default: now).")] = None,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Images, tokens and estimated cost per API key over a period (UTC); your key's line, or every key's
    for an admin key."""
    with _client(url) as client:
        report = client.usage(since=since, until=until)
    if as_json:
        out.print_json(report.model_dump_json())
        return
    period = f"{report.since.isoformat(timespec='seconds')} to {report.until.isoformat(timespec='seconds')}"
    table = Table(title=f"usage {period}", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("key")
    for heading in ("images", "input tokens", "output tokens", "total tokens", "est. cost (USD)"):
        table.add_column(heading, justify="right", no_wrap=True)
    for line in report.keys:
        table.add_row(
            Text(line.key) if line.key is not None else Text("(no key)", style="dim"),
            f"{line.images:,}",
            f"{line.input_tokens:,}",
            f"{line.output_tokens:,}",
            f"{line.total_tokens:,}",
            f"{line.estimated_cost_usd:,.4f}",
        )
    out.print(table)
    if not report.keys:
        err.print("no provider calls in that period")


@app.command("mcp")
def mcp_stdio(url: Url = DEFAULT_URL) -> None:
    """Serve PixyProxy's MCP tools over stdio for a desktop assistant, forwarding every call to the
    server at --url (API key from $PIXYPROXY_API_KEY). See docs/mcp.md."""
    try:
        import anyio

        from pixyproxy.entrypoints.mcp.stdio import serve_stdio
    except ImportError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}: install pixyproxy[mcp]", highlight=False)
        raise typer.Exit(1) from exc
    anyio.run(serve_stdio, url)
