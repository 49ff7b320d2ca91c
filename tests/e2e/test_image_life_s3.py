"""Variants and delete on S3, over HTTP in process: the url route presigns the variant itself, content
serves it from the bucket, and DELETE empties the bucket of the image (checked with a plain client)."""

import io

import httpx
from PIL import Image

from pixyproxy.entrypoints.app import create_app
from tests.support.embedded import embedded_container


def objects_of(endpoint, bucket: str, guid: str) -> list[str]:
    listed = endpoint.client().list_objects_v2(Bucket=bucket, Prefix=f"images/{guid}.")
    return sorted(item["Key"].removeprefix("images/") for item in listed.get("Contents", []))


async def test_variants_and_delete_on_s3(tmp_path, s3_env, s3_bucket):
    container = embedded_container(tmp_path)
    settings = container.settings().model_copy(update={"storage_url": f"s3://{s3_bucket}/images"})
    container.settings.override(settings)
    app = create_app(container)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as client,
    ):
        image = (await client.post("/image/", json={"prompt": "on s3", "size": "512x384"})).json()
        guid = image["guid"]

        answer = await client.get(f"/image/{guid}/url", params={"width": 64, "format": "webp"})
        assert answer.status_code == 200 and answer.json()["expires_at"]
        presigned = answer.json()["url"]
        assert f"{guid}.w64.webp" in presigned
        with httpx.Client(timeout=30) as outside:  # straight to S3, not through the service
            fetched = outside.get(presigned)
        assert fetched.status_code == 200
        with Image.open(io.BytesIO(fetched.content)) as decoded:
            assert decoded.format == "WEBP" and decoded.size == (64, 48)

        served = await client.get(f"/image/{guid}/content", params={"width": 64, "format": "webp"})
        assert served.status_code == 200 and served.content == fetched.content
        part = await client.get(
            f"/image/{guid}/content", params={"width": 64, "format": "webp"}, headers={"Range": "bytes=0-3"}
        )
        assert part.status_code == 206 and part.content == b"RIFF"
        assert (await client.get(f"/image/{guid}/content?format=jpeg")).status_code == 200
        assert objects_of(s3_env, s3_bucket, guid) == sorted(
            [image["filename"], f"{guid}.w64.webp", f"{guid}.full.jpg"]
        )

        assert (await client.delete(f"/image/{guid}")).status_code == 204
        assert objects_of(s3_env, s3_bucket, guid) == []
        assert (await client.get(f"/image/{guid}/url?width=64")).status_code == 404
        assert (await client.delete(f"/image/{guid}")).status_code == 404
