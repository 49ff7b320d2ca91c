"""The ComfyUI provider against the fake server: the workflow's mapped inputs filled, the prompt queued
with the WebSocket followed (previews as partial images), outputs through /history and /view, edits
through /upload/image, graph errors naming the node, and a mapping the workflow lacks refused at start."""

import asyncio
import io
import json
import threading
from pathlib import Path

import pytest
from PIL import Image

from pixyproxy.adapters.catalogue_file import CatalogueError, read_catalogue_file
from pixyproxy.adapters.providers import comfyui
from pixyproxy.adapters.providers.base import ProviderContext, fails_over
from pixyproxy.domain.errors import GeneratorError, InvalidImageRequest
from pixyproxy.domain.models import EditRequest, GenerationRequest, PartialImage, SourceImage
from tests.support.fake_comfyui import FakeComfyUI

WORKFLOWS = Path(__file__).parents[1] / "support" / "workflows"
TXT2IMG = {
    "prompt": "6.text",
    "negative_prompt": "7.text",
    "width": "5.width",
    "height": "5.height",
    "seed": "3.seed",
}


@pytest.fixture(scope="module")
def fake():
    with FakeComfyUI() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake):
    fake.reset()


def models_file(tmp_path, base_url, workflow="sdxl_api.json", inputs=None) -> Path:
    (tmp_path / "workflows").mkdir(exist_ok=True)
    (tmp_path / "workflows" / workflow).write_text((WORKFLOWS / workflow).read_text())
    path = tmp_path / "models.yaml"
    entry = {
        "name": "my-sdxl",
        "provider": "comfyui",
        "base_url": base_url,
        "workflow": f"workflows/{workflow}",
        "inputs": inputs or TXT2IMG,
    }
    path.write_text(json.dumps({"models": [entry]}))  # JSON is YAML
    return path


def generator(tmp_path, fake, **kwargs) -> comfyui.ComfyImageGenerator:
    entry = read_catalogue_file(models_file(tmp_path, fake.base_url, **kwargs)).models[0]
    return comfyui.build(entry, ProviderContext(timeout_seconds=20), alternatives=False)


async def test_the_mapped_inputs_are_filled_and_previews_become_partial_images(tmp_path, fake):
    gen = generator(tmp_path, fake)
    partials: list[PartialImage] = []

    async def on_partial(partial: PartialImage) -> None:
        partials.append(partial)

    try:
        image = await gen.generate(
            GenerationRequest(prompt="a lighthouse", size="768x512"), partial_images=2, on_partial=on_partial
        )
        other = await gen.generate(GenerationRequest(prompt="a lighthouse", size="768x512"))
    finally:
        await gen.close()
    assert Image.open(io.BytesIO(image.data)).size == (768, 512) and image.size == "768x512"
    graph = fake.prompts[0]["prompt"]
    assert graph["6"]["inputs"]["text"] == "a lighthouse"
    assert (graph["5"]["inputs"]["width"], graph["5"]["inputs"]["height"]) == (768, 512)
    assert graph["7"]["inputs"]["text"] == "text, watermark"  # the workflow's own negative prompt
    assert graph["3"]["inputs"]["seed"] != fake.prompts[1]["prompt"]["3"]["inputs"]["seed"]
    assert fake.prompts[0]["client_id"] != fake.prompts[1]["client_id"]
    assert [(p.index, p.output_format) for p in partials] == [(0, "png"), (1, "png")]  # of 3 sent, 2 asked
    assert Image.open(io.BytesIO(partials[0].data)).size == (64, 64)
    assert other.data and fake.previews_sent == 6


async def test_a_negative_prompt_goes_to_its_mapped_input_and_is_refused_where_unmapped(tmp_path, fake):
    from pixyproxy.adapters.catalogue_file import entry_capabilities

    gen = generator(tmp_path, fake)
    try:
        image = await gen.generate(GenerationRequest(prompt="a lighthouse", negative_prompt="fog, people"))
    finally:
        await gen.close()
    graph = fake.prompts[0]["prompt"]
    assert graph["7"]["inputs"]["text"] == "fog, people"
    details = image.usage["provider_details"]
    assert details["negative_prompt"] == "fog, people" and details["seed"] == graph["3"]["inputs"]["seed"]
    assert details["prompt_id"] in fake.history
    bare = read_catalogue_file(models_file(tmp_path, fake.base_url, inputs={"prompt": "6.text"})).models[0]
    with pytest.raises(InvalidImageRequest, match="negative_prompt: model 'my-sdxl' does not take"):
        entry_capabilities(bare).check(GenerationRequest(prompt="x", negative_prompt="fog"), "my-sdxl")


async def test_a_generation_given_up_leaves_the_queue_or_stops_running(tmp_path, fake):
    gen = generator(tmp_path, fake)
    fake.gate = threading.Event()  # the first prompt runs and holds; the second waits in the queue
    try:
        first = asyncio.create_task(gen.generate(GenerationRequest(prompt="first")))
        await asyncio.to_thread(fake.wait_until, lambda: fake.running is not None)
        second = asyncio.create_task(gen.generate(GenerationRequest(prompt="second")))
        await asyncio.to_thread(fake.wait_until, lambda: len(fake.pending) == 1)
        running, pending = fake.running[1], fake.pending[0][1]
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        assert fake.deleted == [pending] and not fake.interrupted  # dequeued; the running one untouched
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.to_thread(fake.wait_until, lambda: fake.running is None)
        assert fake.interrupted == [running] and fake.deleted == [pending]
        assert fake.history[running]["status"]["status_str"] == "error" and pending not in fake.history
    finally:
        fake.gate.set()
        fake.gate = None
        await gen.close()


async def test_edits_upload_the_source_and_map_it(tmp_path, fake):
    inputs = {"prompt": "6.text", "image": "10.image", "seed": "3.seed"}
    gen = generator(tmp_path, fake, workflow="img2img_api.json", inputs=inputs)
    out = io.BytesIO()
    Image.new("RGB", (320, 200), "red").save(out, format="PNG")
    source = SourceImage(out.getvalue(), "image/png", "cat.png", 320, 200)
    try:
        image = await gen.edit(EditRequest(prompt="make it blue"), [source])
    finally:
        await gen.close()
    assert Image.open(io.BytesIO(image.data)).size == (320, 200)
    uploaded = fake.prompts[0]["prompt"]["10"]["inputs"]["image"]
    assert uploaded.endswith("cat.png") and ("input", "", uploaded) in fake.files


async def test_a_graph_error_is_a_422_naming_the_node_and_a_run_error_names_it_too(tmp_path, fake):
    gen = generator(tmp_path, fake, inputs={"prompt": "6.text"})
    try:
        gen._graph["3"]["inputs"]["seed"] = -1  # a workflow whose own value ComfyUI refuses
        with pytest.raises(InvalidImageRequest, match=r"node 3 \(KSampler\).*seed"):
            await gen.generate(GenerationRequest(prompt="x"))
        gen._graph["3"]["inputs"]["seed"] = 7
        with pytest.raises(GeneratorError, match=r"node 3 \(KSampler\): CUDA out of memory") as failed:
            await gen.generate(GenerationRequest(prompt="crash please"))
        assert not isinstance(failed.value, InvalidImageRequest)
    finally:
        await gen.close()


@pytest.mark.parametrize(
    ("inputs", "named"),
    [
        ({"prompt": "66.text"}, "inputs: prompt: the workflow has no node '66'"),
        ({"prompt": "6.txt"}, "inputs: prompt: node 6 (CLIPTextEncode) has no input 'txt'"),
        ({"prompt": "6.text", "steps": "3.steps"}, "inputs: steps: not one of"),
        ({"seed": "3.seed"}, "inputs: must map at least prompt"),
    ],
)
def test_a_mapping_the_workflow_lacks_stops_the_start_naming_it(tmp_path, fake, inputs, named):
    with pytest.raises(
        CatalogueError, match=r"models\[0\] \(my-sdxl\): " + named.replace("(", r"\(").replace(")", r"\)")
    ):
        read_catalogue_file(models_file(tmp_path, fake.base_url, inputs=inputs))


def test_a_ui_format_or_missing_workflow_is_named(tmp_path, fake):
    path = models_file(tmp_path, fake.base_url)
    (tmp_path / "workflows" / "sdxl_api.json").write_text(json.dumps({"nodes": [], "links": []}))
    with pytest.raises(CatalogueError, match="UI format; export it with Export"):
        read_catalogue_file(path)
    (tmp_path / "workflows" / "sdxl_api.json").unlink()
    with pytest.raises(CatalogueError, match=r"workflow: .* cannot be read"):
        read_catalogue_file(path)


async def test_readiness_and_a_server_that_is_down(tmp_path, fake):
    from tests.e2e.server import free_port

    gen = generator(tmp_path, fake)
    down = generator(tmp_path, fake)
    down._base_url = f"http://127.0.0.1:{free_port()}"
    try:
        await gen.ping()
        with pytest.raises(GeneratorError) as failed:
            await down.generate(GenerationRequest(prompt="x"))
        assert fails_over(failed.value)
    finally:
        await gen.close()
        await down.close()


def test_size_and_edits_are_taken_only_where_mapped(tmp_path, fake):
    from pixyproxy.adapters.catalogue_file import entry_capabilities

    mapped = entry_capabilities(read_catalogue_file(models_file(tmp_path, fake.base_url)).models[0])
    assert "size" in mapped.options and not mapped.edits
    bare = read_catalogue_file(models_file(tmp_path, fake.base_url, inputs={"prompt": "6.text"})).models[0]
    with pytest.raises(InvalidImageRequest, match="size"):
        entry_capabilities(bare).check(GenerationRequest(prompt="x", size="512x512"), "my-sdxl")
