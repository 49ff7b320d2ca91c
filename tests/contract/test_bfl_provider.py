"""The FLUX provider against the fake BFL API: submit, poll at the provider's pace, fetch the sample at
once (before its URL expires), moderation, credits, rate limits and lost tasks."""

import io
import itertools
import time

import pytest
from PIL import Image

from pixyproxy.adapters.catalogue_file import CatalogueError, check_keys, entry_capabilities
from pixyproxy.adapters.providers import bfl
from pixyproxy.adapters.providers.base import ProviderContext, fails_over
from pixyproxy.domain.catalogue import CatalogueFile, ModelEntry
from pixyproxy.domain.errors import (
    ContentPolicyViolation,
    GeneratorError,
    GeneratorModelUnavailable,
    GeneratorRateLimited,
    GeneratorTimeout,
    InvalidImageRequest,
)
from pixyproxy.domain.models import EditRequest, GenerationRequest, SourceImage
from tests.support.fake_bfl import KEY, FakeBfl


@pytest.fixture(scope="module")
def fake():
    with FakeBfl(sample_ttl=600) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake):
    fake.reset()


def entry(fake, **fields) -> ModelEntry:
    fields = {"model": "flux-2-pro", "base_url": fake.base_url, "api_key_env": "MY_BFL", **fields}
    return ModelEntry(name="flux", provider="bfl", **fields)


def generator(fake, timeout: float = 20, key: str = KEY, **fields) -> bfl.BflImageGenerator:
    context = ProviderContext(
        timeout_seconds=timeout, environment=lambda name: key if name == "MY_BFL" else None
    )
    made = bfl.build(entry(fake, **fields), context, alternatives=False)
    made._first_poll = 0.05  # the fake answers at once; the pace rules are the same
    return made


async def test_an_image_is_submitted_polled_and_fetched_at_once(fake):
    gen = generator(fake)
    try:
        image = await gen.generate(GenerationRequest(prompt="a fox", size="1024x768", output_format="png"))
    finally:
        await gen.close()
    assert Image.open(io.BytesIO(image.data)).size == (1024, 768)
    assert (image.model, image.size, image.output_format) == ("flux-2-pro", "1024x768", "png")
    assert fake.submitted == [{"prompt": "a fox", "width": 1024, "height": 768, "output_format": "png"}]
    assert fake.submit_headers[0]["x-key"] == KEY and all(h["x-key"] == KEY for h in fake.poll_headers)
    task = next(iter(fake.tasks.values()))
    assert task.polls == fake.pending_polls + 1
    assert [status for _, status in fake.downloads] == [200]


async def test_the_sample_is_fetched_before_it_expires_and_a_late_fetch_fails_at_the_fake(fake):
    fake.sample_ttl = 5.0
    try:
        gen = generator(fake)
        try:
            await gen.generate(GenerationRequest(prompt="a lighthouse"))
        finally:
            await gen.close()
        assert [status for _, status in fake.downloads] == [200]
        task_id = next(iter(fake.tasks))
        fake.advance(6.0)  # the sample's URL has expired now: whoever fetches it late gets nothing
        late = generator(fake)
        try:
            with pytest.raises(GeneratorError, match="HTTP 403"):
                await late.download(f"{fake.base_url}/delivery/{task_id}.jpeg?se=signed")
        finally:
            await late.close()
        assert [status for _, status in fake.downloads] == [200, 403]
    finally:
        fake.sample_ttl = 600.0


async def test_polling_backs_off_and_a_429_waits_its_retry_after(fake):
    fake.pending_polls = 3
    fake.fail_next("rate_limit", on="poll")
    gen = generator(fake)
    try:
        await gen.generate(GenerationRequest(prompt="a slow fox"))
    finally:
        await gen.close()
    times = next(iter(fake.tasks.values())).poll_times
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.9  # the 429 said retry-after: 1
    assert all(later >= earlier * 1.2 for earlier, later in itertools.pairwise(gaps)), gaps


@pytest.mark.parametrize("prompt", ["something forbidden", "something explicit"])
async def test_moderation_is_a_content_policy_refusal(fake, prompt):
    gen = generator(fake)
    try:
        with pytest.raises(ContentPolicyViolation, match="Moderated") as refused:
            await gen.generate(GenerationRequest(prompt=prompt))
    finally:
        await gen.close()
    assert not fails_over(refused.value) and not fake.downloads


async def test_out_of_credits_is_provider_billing(fake):
    fake.credits = 0
    gen = generator(fake)
    try:
        with pytest.raises(bfl.ProviderBilling) as refused:
            await gen.generate(GenerationRequest(prompt="a fox"))
    finally:
        await gen.close()
    assert refused.value.code == "provider_billing" and not fails_over(refused.value)


async def test_a_submit_429_fails_over_and_an_error_status_fails_cleanly(fake):
    fake.fail_next("rate_limit")
    gen = generator(fake)
    try:
        with pytest.raises(GeneratorRateLimited) as limited:
            await gen.generate(GenerationRequest(prompt="a fox"))
        assert limited.value.retry_after == 1 and fails_over(limited.value)
        with pytest.raises(GeneratorError, match="failed the task"):
            await gen.generate(GenerationRequest(prompt="a broken fox"))
    finally:
        await gen.close()


async def test_a_lost_task_and_repeated_poll_failures_fail_the_generation(fake):
    gen = generator(fake)
    try:
        with pytest.raises(GeneratorError, match="lost the task"):
            await gen._poll(f"{fake.base_url}/v1/get_result?id=nope", "nope")
        fake.pending_polls = 10
        fake.fail_next("server_error", on="poll", times=bfl.MAX_POLL_FAILURES)
        with pytest.raises(GeneratorError, match="polling the FLUX task failed"):
            await gen.generate(GenerationRequest(prompt="a fox"))
    finally:
        await gen.close()


async def test_the_deployment_timeout_bounds_the_whole_generation(fake):
    fake.pending_polls = 1000
    gen = generator(fake, timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(GeneratorTimeout):
            await gen.generate(GenerationRequest(prompt="a fox"))
    finally:
        await gen.close()
    assert time.monotonic() - started < 3


async def test_an_unknown_model_and_a_wrong_key_are_named(fake):
    gen = generator(fake, model="flux-9")
    wrong = generator(fake, key="not-the-key")
    try:
        with pytest.raises(GeneratorModelUnavailable, match="flux-9"):
            await gen.generate(GenerationRequest(prompt="a fox"))
        with pytest.raises(GeneratorError, match="refused our key"):
            await wrong.generate(GenerationRequest(prompt="a fox"))
    finally:
        await gen.close()
        await wrong.close()


async def test_edits_send_the_image_and_references_as_input_images(fake):
    def source(size):
        out = io.BytesIO()
        Image.new("RGB", size, "red").save(out, format="PNG")
        return SourceImage(out.getvalue(), "image/png", "a.png", *size)

    gen = generator(fake)
    try:
        image = await gen.edit(EditRequest(prompt="make it blue"), [source((520, 400)), source((64, 64))])
    finally:
        await gen.close()
    body = fake.submitted[0]
    assert set(body) == {"prompt", "width", "height", "input_image", "input_image_2"}
    assert (body["width"], body["height"]) == (512, 400) and image.size == "512x400"
    huge = SourceImage(b"", "image/png", "big.png", 4000, 3000)
    assert bfl._size(EditRequest(prompt="x"), [huge]) == (2352, 1760)  # within 4 MP, multiples of 16
    with pytest.raises(InvalidImageRequest, match="mask"):
        await gen.edit(EditRequest(prompt="x"), [source((64, 64))], source((64, 64)))


def test_sizes_are_multiples_of_16_and_at_most_4_megapixels():
    caps = entry_capabilities(ModelEntry(name="flux", provider="bfl"))
    caps.check(GenerationRequest(prompt="x", size="2048x2048"), "flux")
    with pytest.raises(InvalidImageRequest, match="multiple of 16"):
        caps.check(GenerationRequest(prompt="x", size="1000x1000"), "flux")
    with pytest.raises(InvalidImageRequest, match="pixels"):
        caps.check(GenerationRequest(prompt="x", size="2048x2064"), "flux")
    with pytest.raises(InvalidImageRequest, match="quality"):
        caps.check(GenerationRequest(prompt="x", quality="high"), "flux")


def test_the_key_is_required_at_start_and_never_sent_to_another_domain(fake):
    with pytest.raises(CatalogueError, match="BFL_API_KEY"):
        check_keys(CatalogueFile(models=[ModelEntry(name="flux", provider="bfl")]), lambda name: None)
    gen = bfl.BflImageGenerator(
        model="flux-2-pro", api_key=KEY, base_url="https://api.bfl.ai", timeout_seconds=5
    )
    assert gen._trusted("https://api.us1.bfl.ai/v1/get_result?id=1")
    assert not gen._trusted("https://bfl.ai.evil.example/v1/get_result?id=1")
    assert not gen._trusted("https://example.com/v1/get_result")


async def test_the_first_poll_comes_where_the_deployments_tasks_lately_were_ready(fake):
    fake.ready_after_seconds = 1.0
    gen = generator(fake)
    try:
        await gen.generate(GenerationRequest(prompt="first"))
        await gen.generate(GenerationRequest(prompt="second"))
    finally:
        await gen.close()
        fake.ready_after_seconds = None
    first, second = (len(task.poll_times) for task in fake.tasks.values())
    assert first >= 5 and second <= 3, (first, second)  # backoff from 50 ms, then a learned first wait
    assert gen._typical is not None and gen._typical >= 1.0


async def test_a_pending_answers_progress_is_told_to_the_job(fake):
    from pixyproxy.domain.progress import reporting_to

    fake.pending_polls = 3
    heard: list[float] = []
    gen = generator(fake)
    try:
        with reporting_to(heard.append):
            await gen.generate(GenerationRequest(prompt="a slow fox"))
    finally:
        await gen.close()
    assert heard == [0.25, 0.5, 0.75]  # what each Pending said; 1 is the job's once the image is stored


@pytest.mark.parametrize("progress", [None, 0, 1, 1.5, "half", float("nan"), True])
def test_a_progress_that_tells_nothing_is_not_told(progress):
    from pixyproxy.domain.progress import reporting_to

    heard: list[float] = []
    with reporting_to(heard.append):
        bfl._report({"status": "Pending", "progress": progress})
        bfl._report({"status": "Pending"})
    assert heard == []
