"""Seeding the stores a benchmark reads, through the service's own adapters (so any backend works).

    python -m bench.data SPEC [SPEC...]      SPEC = label:count:png_bytes

Runs with the same PIXYPROXY_* environment as the server under test and prints one JSON object:
{label: [guid, ...]}. Each image gets its own blob; all images of one label share the same bytes.
"""

import asyncio
import hashlib
import io
import json
import math
import os
import sys
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from PIL import Image

from pixyproxy.container import Container
from pixyproxy.domain.models import PNG, ImageDetail


def make_png(approx_bytes: int) -> tuple[bytes, int, int]:
    """An uncompressed PNG of random pixels: its size is close to `approx_bytes`, and it decodes."""
    side = max(8, int(math.sqrt(approx_bytes / 3)))
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=0)
    return out.getvalue(), side, side


async def seed(specs: list[tuple[str, int, int]]) -> dict[str, list[str]]:
    container = Container()
    repository, blobs = container.repository(), container.blobs()
    await repository.init()
    await blobs.init()
    result: dict[str, list[str]] = {}
    now = datetime.now(UTC)
    try:
        for label, count, size in specs:
            data, width, height = make_png(size)
            digest = hashlib.sha256(data).hexdigest()
            details = []
            for i in range(count):
                guid = uuid4()
                details.append(
                    ImageDetail(
                        guid=guid,
                        prompt=f"bench {label} {i}: a lighthouse at dusk, watercolour",
                        filename=f"{guid}.png",
                        created_at=now - timedelta(microseconds=len(details)),
                        size_bytes=len(data),
                        width=width,
                        height=height,
                        model="pixyproxy-offline",
                        size="512x512",
                        sha256=digest,
                    )
                )
            for start in range(0, count, 50):
                batch = details[start : start + 50]
                await asyncio.gather(*(blobs.put(d.filename, data, PNG) for d in batch))
                for detail in batch:
                    await repository.add(detail)
            result[label] = [str(d.guid) for d in details]
    finally:
        await repository.close()
        await blobs.close()
    return result


def main() -> None:
    specs = []
    for spec in sys.argv[1:]:
        label, count, size = spec.split(":")
        specs.append((label, int(count), int(size)))
    print(json.dumps(asyncio.run(seed(specs))))


if __name__ == "__main__":
    main()
