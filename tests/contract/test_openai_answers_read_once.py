"""How the OpenAI adapter takes an answer in: a JSON body in one read (not the SDK bridge's 16 KB
chunks), parsed and decoded once, on the loop, with no hand-off to a thread; an image download and a
stream of events keep their chunks (the download its size cap)."""

import asyncio

import httpx2

from pixyproxy.adapters.openai.transport import one_read_client
from pixyproxy.domain.models import GenerationRequest
from tests.support.fake_openai import COMPATIBLE_MODEL, DEFAULT_MODEL

TIMEOUT, LIMITS = httpx2.Timeout(5, connect=2), httpx2.Limits(max_connections=10)


async def chunks(client: httpx2.AsyncClient, method: str, url: str, **kwargs) -> list[bytes]:
    async with client.stream(method, url, **kwargs) as response:
        assert response.status_code == 200
        return [chunk async for chunk in response.aiter_raw()]


async def test_a_json_answer_arrives_in_one_read(fake_openai):
    fake_openai.noise = True  # ~263 KB of JSON: 17 chunks through the SDK's own bridge
    client = one_read_client(TIMEOUT, LIMITS)
    try:
        body = {"prompt": "x", "model": DEFAULT_MODEL, "size": "256x256"}
        received = await chunks(client, "POST", f"{fake_openai.base_url}/images/generations", json=body)
    finally:
        await client.aclose()
    assert len(received) == 1 and len(received[0]) > 250_000


async def test_an_image_download_keeps_its_chunks(fake_openai):
    fake_openai.noise = True
    client = one_read_client(TIMEOUT, LIMITS)
    try:
        body = {"prompt": "x", "model": COMPATIBLE_MODEL, "size": "256x256", "response_format": "url"}
        answer = await client.post(f"{fake_openai.base_url}/images/generations", json=body)
        received = await chunks(client, "GET", answer.json()["data"][0]["url"])
    finally:
        await client.aclose()
    assert len(received) > 1 and sum(map(len, received)) > 150_000


async def test_a_generation_hands_nothing_to_a_thread(openai_generator, fake_openai, monkeypatch):
    fake_openai.noise = True
    await openai_generator.generate(GenerationRequest(prompt="x"))  # the SDK's one-off platform probe
    threads: list[object] = []
    real = asyncio.to_thread

    async def counted(func, /, *args, **kwargs):
        threads.append(func)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    image = await openai_generator.generate(GenerationRequest(prompt="x", size="256x256"))
    assert threads == [] and len(image.data) > 150_000


async def test_a_stream_of_events_still_streams(openai_generator, fake_openai):
    seen: list[int] = []

    async def on_partial(partial) -> None:
        seen.append(partial.index)

    image = await openai_generator.generate(
        GenerationRequest(prompt="x"), partial_images=1, on_partial=on_partial
    )
    assert seen == [0] and image.data.startswith(b"\x89PNG")
