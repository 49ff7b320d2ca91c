"""The gallery in headless Chromium against the real service (a `pixyproxy serve` subprocess on the
embedded default), seeded with more images than one page holds.

Each test waits on what the page shows (Playwright's auto-waiting expectations), never on a clock. The
offline generator is given a one-second latency so a job is still running when the page starts to follow
its events (the previews and the status are what is checked).
"""

import json
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.server import run_server

PAGE_SIZE = 40  # the gallery's page (gallery.js PAGE_SIZE)
SEEDED = 50
LATENCY = "1"
SUBJECTS = [
    "a lighthouse at dusk", "a red fox in snow", "a teapot on a windowsill", "a city of glass towers",
    "a koi pond from above", "a mountain cabin at night", "a bowl of lemons", "an old bicycle by a wall",
    "a hot air balloon over fields", "a paper boat on a puddle",
]  # fmt: skip
STYLES = ["watercolour", "oil painting", "pixel art", "ink sketch", "flat poster"]
KEY = "gallery-browser-key-7c21"


def prompts(count: int) -> list[str]:
    per_style = len(SUBJECTS)
    return [f"{SUBJECTS[i % per_style]}, {STYLES[i // per_style % len(STYLES)]}" for i in range(count)]


def seed(base_url: str, count: int, headers: dict | None = None) -> None:
    # At once, from threads (Playwright's sync API holds this thread's event loop): one at a time would
    # take count x LATENCY.
    with (
        httpx.Client(base_url=base_url, headers=headers, timeout=60) as client,
        ThreadPoolExecutor(max_workers=count) as pool,
    ):
        answers = list(pool.map(lambda p: client.post("/image/", json={"prompt": p}), prompts(count)))
    for answer in answers:
        answer.raise_for_status()


def api_list(server, headers: dict | None = None, **params) -> list[dict]:
    answer = httpx.get(f"{server.base_url}/image/", params={"limit": 1000, **params}, headers=headers)
    answer.raise_for_status()
    return answer.json()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"PIXYPROXY_OFFLINE_LATENCY_SECONDS": LATENCY}
    with run_server(tmp_path_factory.mktemp("gallery"), env) as running:
        seed(running.base_url, SEEDED)
        yield running
        log = running.log_text()
    assert "Traceback" not in log, log[-5000:]


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("gallery-keyed"), {"PIXYPROXY_API_KEYS": KEY}) as running:
        seed(running.base_url, 3, {"Authorization": f"Bearer {KEY}"})
        yield running


def offered(server) -> dict:
    """What the page was told the API offers (routes/gallery.py api_offer)."""
    page = httpx.get(f"{server.base_url}/").text
    return json.loads(re.search(r'id="api-offer">(.*?)</script>', page, re.S).group(1))


def needs(server, *names: str) -> None:
    """Routes other parts of the service add: until the service offers them the page leaves them out,
    and so does the test (it runs once they are there)."""
    missing = [name for name in names if not offered(server)[name]]
    if missing:
        pytest.skip(f"the service does not offer {', '.join(missing)} yet")


def tile_guids(page) -> list[str]:
    return page.locator("#grid .tile").evaluate_all("tiles => tiles.map(t => t.dataset.guid)")


def open_gallery(open_page, server, **options):
    page, console = open_page(server.base_url, **options)
    page.goto("/")
    expect(page.locator("#grid .tile").first).to_be_visible()
    return page, console


def test_the_grid_shows_the_newest_images_and_scrolling_loads_the_next_page(server, open_page, screenshot):
    page, _ = open_page(server.base_url)
    pages_asked = []
    page.on("request", lambda r: pages_asked.append(r.url) if "/image/?" in r.url else None)
    page.goto("/")
    expect(page.locator("#grid .tile")).to_have_count(PAGE_SIZE)
    page.wait_for_load_state("networkidle")
    newest = api_list(server)
    assert tile_guids(page) == [image["guid"] for image in newest[:PAGE_SIZE]]
    assert len(pages_asked) == 1 and "cursor=" not in pages_asked[0]  # one screen did not need page two
    # Thumbnails are the 256-px variants, shown with the prompt as their text alternative.
    first = page.locator("#grid .tile img").first
    expect(first).to_have_attribute("alt", newest[0]["prompt"])
    expect(first).to_have_js_property("complete", True)
    if offered(server)["variants"]:
        assert "width=256" in first.get_attribute("src")
        assert first.evaluate("img => img.naturalWidth") == 256
    else:  # the whole image, until the service makes variants
        assert first.get_attribute("src").endswith("/content")
    screenshot(page, "grid")

    page.locator("#sentinel").scroll_into_view_if_needed()
    expect(page.locator("#grid .tile")).to_have_count(len(newest))
    assert tile_guids(page) == [image["guid"] for image in newest]
    assert any("cursor=" in url for url in pages_asked)
    expect(page.locator("#grid-status")).to_have_text(f"{len(newest)} images.")


def test_search_and_the_model_filter_narrow_the_grid(server, open_page, screenshot):
    needs(server, "search", "model")
    page, _ = open_gallery(open_page, server)
    page.get_by_label("Search prompts").fill("lighthouse")
    page.get_by_label("Search prompts").press("Enter")
    matching = api_list(server, q="lighthouse")
    assert 0 < len(matching) < PAGE_SIZE
    expect(page.locator("#grid .tile")).to_have_count(len(matching))
    assert tile_guids(page) == [image["guid"] for image in matching]
    for alt in page.locator("#grid .tile img").evaluate_all("imgs => imgs.map(i => i.alt)"):
        assert "lighthouse" in alt
    expect(page.locator("#grid-status")).to_have_text(f"{len(matching)} images match.")
    screenshot(page, "search")

    page.get_by_label("Filter by model").fill("no-such-model")
    page.get_by_label("Search prompts").press("Enter")
    expect(page.locator("#grid .tile")).to_have_count(0)
    expect(page.locator("#grid-status")).to_have_text("No image matches this search.")
    page.get_by_label("Filter by model").fill("pixyproxy-offline")
    page.get_by_label("Search prompts").press("Enter")
    expect(page.locator("#grid .tile")).to_have_count(len(matching))


def test_a_generation_shows_its_progress_then_appears_at_the_top(server, open_page, screenshot):
    needs(server, "jobs", "events")
    page, _ = open_gallery(open_page, server, viewport={"width": 1280, "height": 900})
    # Every status line the page shows, as it shows it.
    page.evaluate("""() => {
        const status = document.getElementById('progress-status');
        window.seenStatus = [];
        new MutationObserver(() => window.seenStatus.push(status.textContent))
            .observe(status, {childList: true, characterData: true, subtree: true});
    }""")
    page.get_by_role("button", name="Generate", exact=True).first.click()
    prompt = "a green submarine under the ice, watercolour"
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_label("Format").select_option("webp")
    page.get_by_label("Previews while it draws").select_option("2")
    page.locator("#gen-submit").click()
    expect(page.locator("#partials img").first).to_be_visible()  # previews arrive while the job runs
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "generate")
    expect(page.locator("#progress-status")).to_have_text(re.compile(r"^Done\. The new image is at the top"))
    expect(page.locator("#partials img")).to_have_count(2)
    seen = page.evaluate("window.seenStatus")
    assert any(text.startswith(("Waiting for its turn", "Generating")) for text in seen), seen
    newest = api_list(server, limit=1)[0]
    assert newest["prompt"] == prompt and newest["output_format"] == "webp"
    first = page.locator("#grid .tile").first
    expect(first).to_have_attribute("data-guid", newest["guid"])
    expect(first.locator("img")).to_have_attribute("alt", prompt)


def test_a_jobs_progress_fills_the_generate_panels_bar(server, open_page):
    """The offline generator reports its (imitated) latency in steps: the bar takes values between 0 and
    1 while the job runs, the status says how far in percent, and the bar is full once done."""
    needs(server, "jobs", "events")
    page, _ = open_gallery(open_page, server)
    page.evaluate("""() => {
        const bar = document.getElementById('progress-bar');
        const status = document.getElementById('progress-status');
        window.seenValues = [];
        window.seenStatus = [];
        new MutationObserver(() => bar.hasAttribute('value') && window.seenValues.push(bar.value))
            .observe(bar, {attributes: true, attributeFilter: ['value']});
        new MutationObserver(() => window.seenStatus.push(status.textContent))
            .observe(status, {childList: true, characterData: true, subtree: true});
    }""")
    page.get_by_role("button", name="Generate", exact=True).first.click()
    page.get_by_label("Prompt", exact=True).fill("a slow heron at dawn, ink sketch")
    page.locator("#gen-submit").click()
    expect(page.locator("#progress-status")).to_have_text(re.compile(r"^Done\. The new image is at the top"))
    values = page.evaluate("window.seenValues")
    assert any(0 < value < 1 for value in values), values
    assert values == sorted(values) and values[-1] == 1, values
    seen = page.evaluate("window.seenStatus")
    assert any(re.fullmatch(r"Generating… \d{1,2}%", text) for text in seen), seen
    expect(page.locator("#progress-bar")).to_have_js_property("value", 1)


def test_an_edit_opens_its_result_with_the_lineage(server, open_page, screenshot):
    page, _ = open_gallery(open_page, server)
    source = page.locator("#grid .tile").nth(3)
    source_guid = source.get_attribute("data-guid")
    source.locator("a").click()
    expect(page.locator("#image-view")).to_be_visible()
    expect(page.locator("#lineage")).to_contain_text("An original")
    page.get_by_label("Edit with a new prompt").fill("the same, at night under a full moon")
    page.get_by_role("button", name="Edit", exact=True).click()
    expect(page).not_to_have_url(re.compile(f"#/image/{source_guid}$"))
    expect(page).to_have_url(re.compile(r"#/image/[0-9a-f-]{36}$"))
    edit_guid = page.url.rsplit("/", 1)[1]
    expect(page.locator("#image-title")).to_have_text("the same, at night under a full moon")
    parent_link = page.locator(f'#lineage a[href="#/image/{source_guid}"]')
    expect(parent_link).to_be_visible()
    expect(page.locator("#lineage")).to_contain_text("Edited from")
    detail = httpx.get(f"{server.base_url}/image/{edit_guid}").json()
    assert detail["parent_guid"] == source_guid
    expect(page.locator("#image-full")).to_have_js_property("complete", True)
    screenshot(page, "image")

    parent_link.click()  # the source now lists its edit
    expect(page.locator("#image-title")).not_to_have_text("the same, at night under a full moon")
    expect(page.locator(f'#lineage a[href="#/image/{edit_guid}"]')).to_be_visible()
    expect(page.locator("#lineage")).to_contain_text("Edits of this image")
    # The edit is the newest image: it is at the top of the grid.
    page.get_by_role("link", name="Back to the gallery").click()
    expect(page.locator("#grid .tile").first).to_have_attribute("data-guid", edit_guid)


def test_details_download_and_share_link(server, open_page):
    page, _ = open_gallery(open_page, server, accept_downloads=True)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    tile = page.locator("#grid .tile").nth(1)
    guid = tile.get_attribute("data-guid")
    tile.locator("a").click()
    detail = httpx.get(f"{server.base_url}/image/{guid}").json()
    details = page.locator("#image-details")
    expect(details).to_contain_text(detail["model"])
    expect(details).to_contain_text(f"{detail['width']} \u00d7 {detail['height']}")
    expect(details).to_contain_text(guid)
    expect(page.locator("#image-full")).to_have_attribute("alt", detail["prompt"])
    with page.expect_download() as downloaded:
        page.get_by_role("link", name="Download").click()
    assert downloaded.value.suggested_filename == detail["filename"]
    with open(downloaded.value.path(), "rb") as handle:
        assert handle.read() == httpx.get(f"{server.base_url}/image/{guid}/content").content
    page.get_by_role("button", name="Copy share link").click()
    expect(page.locator("#share-status")).to_contain_text("Link copied")
    expect(page.locator("#share-status")).to_contain_text(f"/image/{guid}/content")
    assert page.evaluate("navigator.clipboard.readText()").endswith(f"/image/{guid}/content")


def test_a_delete_asks_first_then_removes_the_tile(server, open_page, screenshot):
    needs(server, "remove")
    page, _ = open_gallery(open_page, server)
    tile = page.locator("#grid .tile").nth(2)
    guid = tile.get_attribute("data-guid")
    tile.locator("a").click()
    page.get_by_role("button", name="Delete", exact=True).click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    screenshot(page, "delete")
    dialog.get_by_role("button", name="Keep it").click()
    expect(dialog).to_be_hidden()
    assert httpx.get(f"{server.base_url}/image/{guid}").status_code == 200

    page.get_by_role("button", name="Delete", exact=True).click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("#grid-view")).to_be_visible()
    expect(page.locator(f'#grid .tile[data-guid="{guid}"]')).to_have_count(0)
    expect(page.locator("#grid-status")).to_have_text("The image was deleted.")
    assert httpx.get(f"{server.base_url}/image/{guid}").status_code == 404


def test_the_keyboard_reaches_everything(server, open_page):
    page, _ = open_gallery(open_page, server)
    first = page.locator("#grid .tile a").first
    first.focus()
    page.keyboard.press("ArrowRight")
    second = page.locator("#grid .tile").nth(1)
    expect(second.locator("a")).to_be_focused()
    page.keyboard.press("ArrowDown")  # a row down: as many tiles on as one row holds
    per_row = page.evaluate("""() => { const t = [...document.querySelectorAll('#grid .tile')];
        return t.filter(x => x.offsetTop === t[0].offsetTop).length; }""")
    expect(page.locator("#grid .tile a").nth(1 + per_row)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#image-view")).to_be_visible()
    expect(page.locator("#image-title")).to_be_focused()
    page.keyboard.press("ArrowRight")  # the next image
    expected = page.locator("#grid .tile").nth(2 + per_row).get_attribute("data-guid")
    expect(page).to_have_url(re.compile(f"#/image/{expected}$"))
    page.keyboard.press("Escape")
    expect(page.locator("#grid-view")).to_be_visible()
    expect(page.locator(f'#grid .tile[data-guid="{expected}"] a')).to_be_focused()
    # Every control has a name people and screen readers can find it by.
    unnamed = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea, button')]
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
        .filter(el => !el.textContent.trim())
        .map(el => el.id || el.outerHTML)""")
    assert unnamed == []


def test_a_phone_sees_the_same_gallery_without_scrolling_sideways(server, open_page, screenshot):
    phone = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}
    page, _ = open_gallery(open_page, server, **phone)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    off_screen = page.evaluate("""() => [...document.querySelectorAll('header input, header button')]
        .filter(el => el.offsetParent && el.getBoundingClientRect().right > window.innerWidth)
        .map(el => el.id)""")
    assert off_screen == []
    per_row = page.evaluate("""() => { const t = [...document.querySelectorAll('#grid .tile')];
        return t.filter(x => x.offsetTop === t[0].offsetTop).length; }""")
    assert per_row >= 2
    screenshot(page, "phone-grid")
    page.locator("#grid .tile a").first.click()
    expect(page.locator("#image-full")).to_have_js_property("complete", True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "phone-image")


def test_the_images_are_the_heaviest_thing_on_the_page(server, open_page):
    page, _ = open_page(server.base_url)
    sent: dict[str, int] = {}  # bytes as they came over the wire (compressed where they were)
    page.on("requestfinished", lambda r: sent.__setitem__(r.url, r.sizes()["responseBodySize"]))
    page.goto("/")
    expect(page.locator("#grid .tile")).to_have_count(PAGE_SIZE)
    page.wait_for_load_state("networkidle")
    images = sum(size for url, size in sent.items() if "/content" in url)
    own = {url: size for url, size in sent.items() if url == f"{server.base_url}/" or "/gallery/" in url}
    # The page's own files (HTML, CSS, JavaScript, icon) against one screen of thumbnails, which here are
    # the offline generator's flat drawings (~3 KB each, a tenth of a photograph's).
    assert sum(own.values()) < 20_000 and sum(own.values()) < images / 4, (own, images)


def test_keyed_mode_asks_for_a_key_says_when_it_is_wrong_and_works_with_the_right_one(
    keyed_server, open_page, screenshot
):
    page, console = open_page(keyed_server.base_url)
    console.allow("401")  # the wrong key's refusal, as the browser logs it
    page.goto("/")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("This PixyProxy needs an API key")
    screenshot(page, "key")
    dialog.get_by_label("API key").fill("not-the-key")
    dialog.get_by_role("button", name="Use this key").click()
    wrong = "That API key was not accepted. Check it and try again."
    expect(dialog.locator("#key-message")).to_have_text(wrong)
    expect(dialog).to_be_visible()
    dialog.get_by_label("API key").fill(KEY)
    dialog.get_by_role("button", name="Use this key").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#grid .tile")).to_have_count(3)
    # <img> cannot send the key: thumbnails are fetched with it and shown from blobs.
    first = page.locator("#grid .tile img").first
    expect(first).to_have_attribute("src", re.compile(r"^blob:"))
    expect(first).to_have_js_property("complete", True)
    assert first.evaluate("img => img.naturalWidth") > 0
    assert page.evaluate("sessionStorage.getItem('pixyproxy.apiKey')") == KEY

    # The key stays for the tab: a reload asks nothing, and generating works with it.
    page.reload()
    expect(page.locator("#grid .tile")).to_have_count(3)
    expect(dialog).to_be_hidden()
    page.get_by_role("button", name="Generate", exact=True).first.click()
    page.get_by_label("Prompt", exact=True).fill("a key-shaped cloud")
    page.locator("#gen-submit").click()
    expect(page.locator("#progress-status")).to_have_text(re.compile(r"^Done\."))
    expect(page.locator("#grid .tile")).to_have_count(4)
    made = page.locator("#grid .tile img").first
    expect(made).to_have_attribute("alt", "a key-shaped cloud")
    expect(made).to_have_attribute("src", re.compile(r"^blob:"))  # its bytes served to the key that made it

    page.get_by_role("button", name="Forget key").click()
    expect(dialog).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('pixyproxy.apiKey')") is None


def test_an_error_is_said_in_plain_words_with_its_request_id(server, open_page):
    page, console = open_gallery(open_page, server)
    console.allow("404")  # the browser logs the refused request itself
    page.goto("/#/image/00000000-0000-4000-8000-000000000000")
    notice = page.locator("#notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Could not open the image: No image has that guid.")
    expect(notice.locator("code")).to_have_text(re.compile(r"\S+-\d+$"))
    page.get_by_role("button", name="Dismiss this message").click()
    expect(notice).to_be_hidden()


def test_without_jobs_variants_or_delete_the_page_does_without(server, open_page):
    """A service that offers less (the offer in the page rewritten on its way to the browser): tiles show
    the whole image, Generate makes each image with POST /image/, and Delete is not shown."""
    page, _ = open_page(server.base_url)
    less = {"jobs": False, "events": False, "variants": False, "remove": False}

    def rewrite(route):
        answer = route.fetch()
        offer = re.search(r'id="api-offer">(.*?)</script>', answer.text(), re.S).group(1)
        reduced = json.dumps({**json.loads(offer), **less})
        route.fulfill(response=answer, body=answer.text().replace(offer, reduced))

    page.route(f"{server.base_url}/", rewrite)
    asked = []
    page.on("request", lambda r: asked.append((r.method, r.url.removeprefix(server.base_url))))
    page.goto("/")
    first = page.locator("#grid .tile img").first
    expect(first).to_have_js_property("complete", True)
    assert first.get_attribute("src").endswith("/content") and first.evaluate("i => i.naturalWidth") == 512
    page.get_by_role("button", name="Generate", exact=True).first.click()
    page.get_by_label("Prompt", exact=True).fill("two moons over a quiet harbour")
    page.get_by_label("How many").fill("2")
    page.locator("#gen-submit").click()
    expect(page.locator("#progress-status")).to_have_text("Done. 2 new images are at the top of the gallery.")
    assert [a for a in asked if a[0] == "POST"] == [("POST", "/image/"), ("POST", "/image/")]
    expect(page.locator("#grid .tile img").nth(1)).to_have_attribute("alt", "two moons over a quiet harbour")
    page.locator("#grid .tile a").first.click()
    expect(page.locator("#image-view")).to_be_visible()
    expect(page.get_by_role("button", name="Delete", exact=True)).to_be_hidden()
    expect(page.get_by_role("button", name="Copy share link")).to_be_visible()


def test_a_thumbnail_the_service_refuses_falls_back_to_the_whole_image(server, open_page):
    needs(server, "variants")
    page, console = open_page(server.base_url)
    console.allow("404")  # the browser logs the refused variant itself
    page.route("**/content?width=*", lambda route: route.fulfill(status=404, body="{}"))
    page.goto("/")
    first = page.locator("#grid .tile img").first
    expect(first).to_have_attribute("src", re.compile(r"/content$"))
    expect(first).to_have_js_property("complete", True)
    assert first.evaluate("i => i.naturalWidth") == 512


def test_a_refused_generation_says_why_and_stores_nothing(server, open_page):
    page, console = open_gallery(open_page, server)
    console.allow("422")  # the browser logs the refused request itself
    before = len(api_list(server))
    page.get_by_role("button", name="Generate", exact=True).first.click()
    page.get_by_label("Prompt", exact=True).fill("a lighthouse")
    page.get_by_label("Model", exact=True).fill("no-such-model")
    page.locator("#gen-submit").click()
    notice = page.locator("#notice")
    expect(notice).to_contain_text("Could not generate the image: model:")
    expect(notice.locator("code")).to_have_text(re.compile(r"\S+-\d+$"))
    expect(page.locator("#progress-status")).to_have_text("Not generated.")
    assert len(api_list(server)) == before
