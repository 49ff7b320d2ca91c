"""The gallery over a model catalogue, in headless Chromium: the model filter and the generate form read
GET /models (the form offers only what the chosen model takes), and a script inside an SVG an image
provider made never runs, neither in the gallery nor opened on its own."""

import re
import textwrap

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.server import run_server

FAKE_KEY_ENV = "PIXYPROXY_TEST_FAKE_KEY"


@pytest.fixture(scope="module")
def server(tmp_path_factory, _fake_openai_server):
    workdir = tmp_path_factory.mktemp("gallery-catalogue")
    models = workdir / "models.yaml"
    models.write_text(
        textwrap.dedent(
            f"""\
            default: offline
            models:
              - name: offline
                provider: offline
              - name: small
                provider: offline
                options: {{size: ["256x256"], output_format: [png, webp]}}
              - name: svg-maker
                provider: openai
                model: gpt-image-2.6-sunburst
                base_url: {_fake_openai_server.base_url}
                api_key_env: {FAKE_KEY_ENV}
            """
        )
    )
    env = {"PIXYPROXY_MODELS_FILE": str(models), FAKE_KEY_ENV: "sk-test-gallery-0000"}
    with run_server(workdir, env, timeout=60) as running:
        with httpx.Client(base_url=running.base_url, timeout=30) as client:
            client.post("/image/", json={"prompt": "a first tile"}).raise_for_status()
        yield running


def test_the_form_offers_only_what_the_chosen_model_takes(server, open_page):
    page, _ = open_page(server.base_url)
    page.goto("/")
    expect(page.locator("#models option[value='svg-maker']")).to_have_count(1)  # from GET /models
    page.get_by_role("button", name="Generate", exact=True).first.click()
    expect(page.get_by_label("Complexity")).to_be_visible()  # offline takes everything
    expect(page.get_by_label("Negative prompt")).to_be_visible()
    page.get_by_label("Model", exact=True).fill("small")
    expect(page.get_by_label("Complexity")).to_be_hidden()
    expect(page.get_by_label("Negative prompt")).to_be_hidden()  # its options table names none
    expect(page.get_by_label("Quality")).to_be_hidden()
    sizes = page.get_by_label("Size").locator("option").all_inner_texts()
    assert sizes == ["default", "256x256"]
    formats = page.get_by_label("Format").locator("option").all_inner_texts()
    assert formats[1:] == ["png", "webp"]
    page.get_by_label("Model", exact=True).fill("offline")
    page.get_by_label("Format").select_option("gif")
    expect(page.get_by_label("Frames (gif)")).to_be_visible()
    expect(page.get_by_label("Previews while it draws")).to_be_hidden()


def test_a_negative_prompt_from_the_form_is_sent_and_kept_with_the_image(server, open_page):
    page, _ = open_page(server.base_url)
    page.goto("/")
    page.get_by_role("button", name="Generate", exact=True).first.click()
    page.get_by_label("Prompt", exact=True).fill("a quiet harbour")
    page.get_by_label("Negative prompt").fill("boats, people")
    with page.expect_request(lambda r: r.method == "POST" and "/image/" in r.url) as sent:
        page.locator("#gen-submit").click()
    assert sent.value.post_data_json["negative_prompt"] == "boats, people"
    expect(page.locator("#progress-status")).to_have_text(re.compile(r"^Done\."))
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        newest = client.get("/image/", params={"limit": 1}).json()
    newest = newest[0] if isinstance(newest, list) else newest["items"][0]
    assert newest["prompt"] == "a quiet harbour"
    assert newest["usage"]["provider_details"]["negative_prompt"] == "boats, people"


def test_a_script_inside_an_svg_never_runs(server, open_page, _fake_openai_server):
    _fake_openai_server.reset()
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        made = client.post(
            "/image/", json={"prompt": "an svg with a script", "model": "svg-maker", "output_format": "svg"}
        )
    assert made.status_code == 200, made.text
    guid = made.json()["guid"]
    page, console = open_page(server.base_url)
    page.goto(f"/#/image/{guid}")
    image = page.locator("#image-view img").first
    expect(image).to_have_js_property("complete", True)
    assert page.title() != "svg script ran"
    assert page.evaluate("() => window.svgScriptRan === undefined")
    # Opened on its own, the SVG is a document: the sandboxing CSP keeps its script from running.
    console.allow("Content Security Policy")
    console.allow("sandbox")
    response = page.goto(f"/image/{guid}/content")
    page.wait_for_load_state("load")
    assert page.title() != "svg script ran"
    assert response.headers["content-security-policy"].endswith("sandbox")
