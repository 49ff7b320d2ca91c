"""POST /image/{guid}/edits over real HTTP: on the embedded default (the offline generator edits for
real, so the flow works without a key) and through the real OpenAI SDK against the fake OpenAI server
(multipart image[] with the stored bytes, and the mask). Also: the safety identifier the provider is told,
with keys on and off."""

import hashlib
import io
import json
import uuid

import httpx
import pytest
from PIL import Image, ImageChops

from tests.e2e.server import run_server
from tests.e2e.test_openai_e2e import openai_env, stored
from tests.support.fake_openai import DEFAULT_MODEL

MISSING = "00000000-0000-4000-8000-000000000000"
KEY_A = "edits-e2e-key-a-7d1c"
KEY_B = "edits-e2e-key-b-93fe"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("edits")
    with run_server(workdir) as running:
        running.workdir = workdir
        yield running


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        yield http


def make(client, **body) -> dict:
    response = client.post("/image/", json={"prompt": "a red kite over green hills", **body})
    assert response.status_code == 200, response.text
    return response.json()


def edit(client, guid: str, headers=None, **body) -> httpx.Response:
    return client.post(f"/image/{guid}/edits", json={"prompt": "add a yellow sun", **body}, headers=headers)


def pixels(client, guid: str, mode: str = "RGB") -> Image.Image:
    content = client.get(f"/image/{guid}/content")
    assert content.status_code == 200
    with Image.open(io.BytesIO(content.content)) as image:
        return image.convert(mode)


def lit(mask: Image.Image) -> int:
    """How many pixels of an L image are not 0."""
    return mask.width * mask.height - mask.histogram()[0]


def changed_fraction(a: Image.Image, b: Image.Image, where: Image.Image | None = None) -> float:
    """The share of pixels (inside `where`'s non-zero area, if given) that differ between a and b."""
    diff = ImageChops.difference(a, b).convert("L").point(lambda v: 255 if v else 0)
    region = where if where is not None else Image.new("L", a.size, 255)
    return lit(ImageChops.multiply(diff, region)) / lit(region)


def assert_nothing_above_warning(server, since: int) -> None:
    """A refusal or a provider's failure is logged at WARNING at most, never with a traceback. The
    /healthz request first: its START line comes after the END line of the request before it."""
    assert httpx.get(f"{server.base_url}/healthz").status_code == 200
    written = server.log_text()[since:]
    assert "REQUEST END" in written
    worse = [line for line in written.splitlines() if " ERROR " in line or " CRITICAL " in line]
    assert worse == [] and "Traceback" not in written, "\n".join(worse) or written[-3000:]


# -- the embedded default ---------------------------------------------------------------------------


def test_an_edit_is_a_new_image_visibly_changed_with_its_lineage(server, client):
    source = make(client)
    before = stored(server, client)
    response = edit(client, source["guid"])
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["guid"] != source["guid"]
    assert edited["parent_guid"] == source["guid"]
    assert (edited["mask_guid"], edited["reference_guids"]) == (None, None)
    assert edited["prompt"] == "add a yellow sun" and edited["model"] == "pixyproxy-offline"
    assert (edited["width"], edited["height"]) == (source["width"], source["height"])
    assert stored(server, client) == (before[0] + 1, before[1] + 1)
    assert client.get(f"/image/{edited['guid']}").json() == edited  # the lineage is kept, not echoed
    assert client.get("/image/", params={"limit": 1}).json() == [edited]
    # Visibly changed by the prompt, and the source itself untouched.
    assert changed_fraction(pixels(client, source["guid"]), pixels(client, edited["guid"])) > 0.5
    assert client.get(f"/image/{source['guid']}").json() == source
    assert (
        hashlib.sha256(client.get(f"/image/{source['guid']}/content").content).hexdigest() == source["sha256"]
    )


def test_the_offline_edit_is_deterministic_and_follows_the_prompt(client):
    source = make(client, prompt="a deterministic source")
    first, again = edit(client, source["guid"]).json(), edit(client, source["guid"]).json()
    other = edit(client, source["guid"], prompt="paint it at night").json()
    assert first["guid"] != again["guid"] and first["sha256"] == again["sha256"]
    assert other["sha256"] != first["sha256"]


def test_the_trailing_slash_twin_answers_the_same(client):
    source = make(client)
    response = client.post(f"/image/{source['guid']}/edits/", json={"prompt": "add a yellow sun"})
    assert response.status_code == 200, response.text
    assert response.json()["parent_guid"] == source["guid"]


def test_only_the_masks_transparent_pixels_change(client):
    source = make(client)
    # The offline generator draws a transparent background: its shapes stay opaque, the rest is alpha 0.
    mask = make(client, prompt="a large circle", background="transparent")
    response = edit(client, source["guid"], mask_guid=mask["guid"])
    assert response.status_code == 200, response.text
    edited = response.json()
    assert (edited["parent_guid"], edited["mask_guid"]) == (source["guid"], mask["guid"])
    alpha = pixels(client, mask["guid"], "RGBA").getchannel("A")
    editable = alpha.point(lambda a: 255 if a == 0 else 0)
    kept = alpha.point(lambda a: 0 if a == 0 else 255)
    assert 0 < lit(kept) < alpha.width * alpha.height  # both regions exist
    before, after = pixels(client, source["guid"]), pixels(client, edited["guid"])
    assert changed_fraction(before, after, kept) == 0
    assert changed_fraction(before, after, editable) > 0.5


def test_references_are_kept_in_order_and_options_are_honoured(client):
    # A transparent edit keeps the source's alpha, so the source has some.
    source = make(client, background="transparent")
    first, second = make(client, prompt="a blue boat"), make(client, prompt="a fish")
    references = [second["guid"], first["guid"]]
    response = edit(
        client,
        source["guid"],
        reference_guids=references,
        size="256x128",
        output_format="webp",
        output_compression=70,
        background="transparent",
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["reference_guids"] == references and edited["parent_guid"] == source["guid"]
    assert (edited["width"], edited["height"], edited["size"]) == (256, 128, "256x128")
    assert (edited["content_type"], edited["filename"]) == ("image/webp", f"{edited['guid']}.webp")
    assert (edited["output_format"], edited["output_compression"], edited["background"]) == (
        "webp",
        70,
        "transparent",
    )
    content = client.get(f"/image/{edited['guid']}/content")
    assert content.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(content.content)) as image:
        assert (image.format, image.mode, image.size) == ("WEBP", "RGBA", (256, 128))


@pytest.mark.parametrize(
    ("target", "body", "status", "in_detail"),
    [
        ("missing", {}, 404, "No image has that guid."),
        ("not-a-uuid", {}, 404, "No image has that guid."),
        ("source", {"mask_guid": MISSING}, 422, f"mask_guid: no image has the guid {MISSING}"),
        ("source", {"reference_guids": [MISSING]}, 422, "reference_guids: no image has the guid"),
        ("source", {"mask_guid": "small-mask"}, 422, "mask_guid: the mask is 256x256, the image 512x512"),
        ("source", {"reference_guids": [MISSING] * 16}, 422, "reference_guids"),
        ("source", {"mask_guid": "not-a-uuid"}, 422, "mask_guid"),
        ("source", {"prompt": " "}, 422, "prompt"),
        ("source", {"size": "4096x4096"}, 422, "size"),  # the offline generator draws up to 2048
        ("source", {"output_format": "jpeg", "background": "transparent"}, 422, "background"),
        ("source", {"output_compression": 50}, 422, "output_compression"),
        ("source", {"n": 3}, 422, "one image"),
        ("source", {"moderation": "low"}, 422, "moderation: "),  # the edits endpoint has none
    ],
)
def test_every_refusal_is_a_json_error_that_stores_nothing(server, client, target, body, status, in_detail):
    source = make(client)
    small_mask = make(client, prompt="a small mask", size="256x256", background="transparent")
    guid = {"missing": MISSING, "not-a-uuid": "not-a-uuid", "source": source["guid"]}[target]
    if body.get("mask_guid") == "small-mask":
        body = {**body, "mask_guid": small_mask["guid"]}
    before, logged = stored(server, client), len(server.log_text())
    response = edit(client, guid, **body)
    assert response.status_code == status, response.text
    assert in_detail in response.json()["detail"]
    assert response.json()["code"] == ("image_not_found" if status == 404 else "invalid_request")
    assert stored(server, client) == before
    assert_nothing_above_warning(server, logged)


def test_an_idempotency_key_replays_the_edit_and_refuses_another_request(server, client):
    source, other = make(client), make(client)
    key = {"Idempotency-Key": "edit-once-5b1e"}
    first = edit(client, source["guid"], headers=key)
    assert first.status_code == 200, first.text
    before = stored(server, client)
    replay = client.post(f"/image/{source['guid']}/edits/", json={"prompt": "add a yellow sun"}, headers=key)
    assert replay.status_code == 200 and replay.json() == first.json()
    for response in (
        edit(client, source["guid"], headers=key, prompt="another prompt"),
        edit(client, other["guid"], headers=key),  # the same body against another image
        client.post("/image/", json={"prompt": "add a yellow sun"}, headers=key),  # another route
    ):
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "idempotency_conflict"
    assert stored(server, client) == before


@pytest.mark.parametrize(
    "headers",
    [[("Idempotency-Key", "one"), ("Idempotency-Key", "two")], [("Idempotency-Key", "k" * 256)]],
    ids=["two-keys", "key-over-255"],
)
def test_idempotency_key_rules_are_those_of_post_image(server, client, headers):
    source = make(client)
    before = stored(server, client)
    response = edit(client, source["guid"], headers=headers)
    assert response.status_code == 422, response.text
    assert "idempotency-key" in response.json()["detail"]
    assert stored(server, client) == before
    longest = (uuid.uuid4().hex * 8)[:255]  # a fresh key: each case edits its own source
    assert edit(client, source["guid"], headers={"Idempotency-Key": longest}).status_code == 200


def test_the_route_is_documented(client):
    operation = client.get("/openapi.json").json()["paths"]["/image/{guid}/edits"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/EditRequest")
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ImageDetail"
    )
    assert {"404", "409", "413", "422", "502", "503", "504"} <= set(operation["responses"])
    assert "idempotency-key" in {p["name"] for p in operation["parameters"]}
    assert "/image/{guid}/edits/" not in client.get("/openapi.json").json()["paths"]


# -- through the real SDK against the fake OpenAI server ------------------------------------------


@pytest.fixture(scope="module")
def openai_server(tmp_path_factory, _fake_openai_server):
    workdir = tmp_path_factory.mktemp("edits-openai")
    with run_server(workdir, openai_env(_fake_openai_server)) as running:
        running.workdir = workdir
        yield running


@pytest.fixture
def openai_client(openai_server, fake_openai):
    with httpx.Client(base_url=openai_server.base_url, timeout=30) as http:
        yield http


def test_the_provider_gets_the_stored_bytes_and_the_mask_as_multipart(openai_client, fake_openai):
    source = make(openai_client)
    mask = make(openai_client, prompt="a mask", background="transparent")  # the fake: left half alpha 0
    reference = make(openai_client, prompt="a reference", output_format="webp")
    fake_openai.requests.clear()
    response = edit(
        openai_client,
        source["guid"],
        mask_guid=mask["guid"],
        reference_guids=[reference["guid"]],
        quality="high",
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    [call] = fake_openai.edits
    assert fake_openai.generations == []
    assert call.headers["content-type"].startswith("multipart/form-data")
    images = call.body["image[]"]
    assert [part["data"] for part in images] == [
        openai_client.get(f"/image/{source['guid']}/content").content,
        openai_client.get(f"/image/{reference['guid']}/content").content,
    ]
    assert [(p["filename"], p["content_type"]) for p in images] == [
        (source["filename"], "image/png"),
        (reference["filename"], "image/webp"),
    ]
    assert call.body["mask"]["data"] == openai_client.get(f"/image/{mask['guid']}/content").content
    fields = {k: v for k, v in call.body.items() if k not in ("image[]", "mask")}
    assert fields == {
        "prompt": "add a yellow sun",
        "model": DEFAULT_MODEL,
        "quality": "high",
    }
    assert (edited["parent_guid"], edited["mask_guid"], edited["reference_guids"]) == (
        source["guid"],
        mask["guid"],
        [reference["guid"]],
    )
    assert (edited["model"], edited["quality"]) == (DEFAULT_MODEL, "high")
    assert edited["usage"]["input_tokens_details"]["image_tokens"] == 2 * 323  # as the provider reported
    assert openai_client.get(f"/image/{edited['guid']}").json() == edited
    # The fake inverts where the mask is transparent (its left half): that half changed, the right did not.
    before, after = pixels(openai_client, source["guid"]), pixels(openai_client, edited["guid"])
    width, height = before.size
    left, right = (0, 0, width // 2, height), (width // 2, 0, width, height)
    assert changed_fraction(before.crop(left), after.crop(left)) == 1
    assert changed_fraction(before.crop(right), after.crop(right)) == 0


def test_the_edits_format_is_asked_of_the_provider_and_stored(openai_client, fake_openai):
    source = make(openai_client)
    response = edit(
        openai_client, source["guid"], output_format="jpeg", output_compression=80, size="1536x1024"
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    [call] = fake_openai.edits
    assert (call.body["output_format"], call.body["output_compression"], call.body["size"]) == (
        "jpeg",
        "80",
        "1536x1024",
    )
    assert (edited["content_type"], edited["filename"]) == ("image/jpeg", f"{edited['guid']}.jpg")
    assert (edited["width"], edited["height"]) == (1536, 1024)
    assert openai_client.get(f"/image/{edited['guid']}/content").headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize(
    ("body", "script", "status", "calls"),
    [
        ({"model": "gpt-image-1"}, None, 422, 1),  # shut down; the client named it
        ({}, "bad_size", 422, 1),  # the provider's 400 invalid_request_error
        ({}, "server_error", 502, 2),  # retried once, then a 502
        ({"mask_guid": "tall-mask"}, None, 422, 0),  # our own size check: nothing sent
        ({"reference_guids": [MISSING]}, None, 422, 0),
    ],
)
def test_a_refused_or_failed_edit_stores_nothing(
    openai_server, openai_client, fake_openai, body, script, status, calls
):
    source = make(openai_client)
    tall = make(openai_client, prompt="a tall mask", size="1024x1536", background="transparent")
    if body.get("mask_guid") == "tall-mask":
        body = {"mask_guid": tall["guid"]}
    if script is not None:
        fake_openai.fail_next(script, times=2)
    before, logged = stored(openai_server, openai_client), len(openai_server.log_text())
    response = edit(openai_client, source["guid"], **body)
    assert response.status_code == status, response.text
    assert len(fake_openai.edits) == calls
    assert stored(openai_server, openai_client) == before
    assert_nothing_above_warning(openai_server, logged)


def test_an_unknown_source_is_a_404_that_asks_nothing_of_the_provider(openai_client, fake_openai):
    response = edit(openai_client, MISSING)
    assert response.status_code == 404 and response.json()["code"] == "image_not_found"
    assert fake_openai.edits == []


# -- the safety identifier --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed_openai_server(tmp_path_factory, _fake_openai_server):
    workdir = tmp_path_factory.mktemp("edits-openai-keys")
    env = {**openai_env(_fake_openai_server), "PIXYPROXY_API_KEYS": f"{KEY_A},{KEY_B}"}
    with run_server(workdir, env) as running:
        running.workdir = workdir
        yield running


def as_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def told(call) -> str | None:
    return call.body.get("safety_identifier")


def test_with_keys_on_the_provider_is_told_a_stable_hash_of_the_key_never_the_key(
    keyed_openai_server, fake_openai
):
    with httpx.Client(base_url=keyed_openai_server.base_url, timeout=30) as http:

        def post(path: str, key: str, **body) -> dict:
            response = http.post(path, json={"prompt": "a lighthouse", **body}, headers=as_key(key))
            assert response.status_code == 200, response.text
            return response.json()

        first = post("/image/", KEY_A)
        second = post("/image/", KEY_A, prompt="another lighthouse")
        other = post("/image/", KEY_B)
        edited = post(f"/image/{first['guid']}/edits", KEY_A)
    calls = fake_openai.generations
    assert len(calls) == 3 and len(fake_openai.edits) == 1
    a, b = told(calls[0]), told(calls[2])
    assert a and b and a != b  # one identifier per key
    assert told(calls[1]) == a and told(fake_openai.edits[0]) == a  # stable, for edits too
    assert [d["safety_identifier"] for d in (first, second, other, edited)] == [a, a, b, a]
    for key in (KEY_A, KEY_B):
        digest = hashlib.sha256(key.encode()).hexdigest()
        for call in fake_openai.requests:
            seen = repr(call.body) + json.dumps(call.headers)
            assert key not in seen and digest[:16] not in seen
        assert key not in a + b and digest[:16] not in a + b


def test_with_keys_off_the_provider_is_told_no_safety_identifier(openai_client, fake_openai):
    created = make(openai_client)
    edited = edit(openai_client, created["guid"]).json()
    [generation], [edit_call] = fake_openai.generations, fake_openai.edits
    assert "safety_identifier" not in generation.body and "safety_identifier" not in edit_call.body
    assert created["safety_identifier"] is None and edited["safety_identifier"] is None
