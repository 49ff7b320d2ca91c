"""The service with PIXYPROXY_GENERATOR=openai, over real HTTP, against the fake OpenAI server.

The service runs as `pixyproxy serve` in a subprocess; the fake runs in this process and sees every call.
"""

import concurrent.futures

import httpx
import pytest

from tests.e2e.server import run_server
from tests.support.fake_openai import COMPATIBLE_MODEL, DEFAULT_MODEL, FakeOpenAI

KEY = "sk-e2e-not-a-real-key-9876"


def openai_env(fake: FakeOpenAI, **settings: str) -> dict[str, str]:
    env = {
        "PIXYPROXY_GENERATOR": "openai",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": KEY,
        "PIXYPROXY_OPENAI_TIMEOUT_SECONDS": "1",  # the hang test waits this long
        "PIXYPROXY_OPENAI_MAX_RETRIES": "1",
    }
    env.update({f"PIXYPROXY_OPENAI_{name.upper()}": value for name, value in settings.items()})
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory, _fake_openai_server):
    workdir = tmp_path_factory.mktemp("openai")
    with run_server(workdir, openai_env(_fake_openai_server)) as running:
        running.workdir = workdir
        yield running


@pytest.fixture(scope="module")
def compatible_server(tmp_path_factory, _fake_openai_server):
    with run_server(
        tmp_path_factory.mktemp("compatible"), openai_env(_fake_openai_server, model=COMPATIBLE_MODEL)
    ) as running:
        yield running


@pytest.fixture
def client(server, fake_openai):
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        yield http


def stored(server, client) -> tuple[int, int]:
    """(rows, blobs) the service holds now."""
    rows = client.get("/image/", params={"limit": 1000}).json()
    blobs = [p for p in (server.workdir / "pixyproxy-data" / "images").rglob("*") if p.is_file()]
    return len(rows), len(blobs)


def test_the_prompt_sent_is_the_prompt_the_provider_received_and_usage_is_kept(server, client, fake_openai):
    prompt = "Ein Fuchs 🦊 im Schnee — «aquarelle»\n\tzweite Zeile"
    response = client.post("/image/", json={"prompt": f"  {prompt}  ", "size": "1536x1024", "quality": "low"})
    assert response.status_code == 200, response.text
    detail = response.json()
    [call] = fake_openai.generations
    assert call.body == {"prompt": prompt, "model": DEFAULT_MODEL, "size": "1536x1024", "quality": "low"}
    assert call.headers["authorization"] == f"Bearer {KEY}"
    assert detail["prompt"] == prompt
    assert (detail["model"], detail["size"], detail["quality"]) == (DEFAULT_MODEL, "1536x1024", "low")
    assert (detail["width"], detail["height"]) == (1536, 1024)
    words = len(prompt.split())
    assert detail["usage"]["input_tokens"] == words and detail["usage"]["total_tokens"] == words + 1056
    assert detail["revised_prompt"] is None
    assert client.get(f"/image/{detail['guid']}").json() == detail  # kept in the row, not just echoed
    content = client.get(f"/image/{detail['guid']}/content")
    assert content.status_code == 200 and content.content.startswith(b"\x89PNG")


def test_a_compatible_servers_revised_prompt_is_kept(compatible_server, fake_openai):
    with httpx.Client(base_url=compatible_server.base_url, timeout=30) as http:
        response = http.post("/image/", json={"prompt": "a lighthouse", "quality": "hd"})
        assert response.status_code == 200, response.text
        detail = response.json()
        assert detail["revised_prompt"] == "A detailed rendering of: a lighthouse"
        assert (detail["model"], detail["quality"], detail["usage"]) == (COMPATIBLE_MODEL, "hd", None)
        assert http.get(f"/image/{detail['guid']}").json()["revised_prompt"] == detail["revised_prompt"]
    assert fake_openai.generations[-1].body["prompt"] == "a lighthouse"


def test_a_size_of_the_wrong_shape_is_refused_before_any_call(client, fake_openai):
    response = client.post("/image/", json={"prompt": "x", "size": "8x8"})
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"
    assert "size" in response.json()["detail"] and fake_openai.generations == []


@pytest.mark.parametrize(
    ("kind", "options", "status", "code"),
    [
        ("server_error", {"times": 2}, 502, "generator_error"),  # retried once, then reported
        ("gateway_timeout", {}, 502, "generator_error"),
        ("hang", {"seconds": 5}, 504, "generator_timeout"),
        ("rate_limit", {"retry_after": 30}, 503, "generator_rate_limited"),
        ("quota", {}, 502, "generator_error"),
        ("content_policy", {}, 422, "content_policy_violation"),
        ("moderation_blocked", {}, 422, "content_policy_violation"),
        ("unauthorized", {}, 502, "generator_error"),
        ("empty", {}, 502, "generator_error"),
        ("garbage", {}, 502, "generator_error"),
        ("not_an_image", {}, 502, "generator_error"),
    ],
)
def test_each_failure_has_its_status_and_shape_and_stores_nothing(
    server, client, fake_openai, kind, options, status, code
):
    before = stored(server, client)
    fake_openai.fail_next(kind, **options)
    response = client.post("/image/", json={"prompt": "a failing prompt"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "code", "request_id"} and body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    if status == 503:
        assert response.headers["retry-after"] == "30"
    assert KEY not in response.text and KEY[-8:] not in response.text
    assert stored(server, client) == before
    if kind == "unauthorized":
        assert KEY not in server.log_text() and KEY[-8:] not in server.log_text()


def test_an_idempotent_retry_returns_the_first_image_without_a_second_call(client, fake_openai):
    headers = {"Idempotency-Key": "retry-1"}
    first = client.post("/image/", json={"prompt": "once only"}, headers=headers)
    again = client.post("/image/", json={"prompt": "once only"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and len(fake_openai.generations) == 1


def test_concurrent_duplicates_make_one_image_and_one_provider_call(server, client, fake_openai):
    fake_openai.latency = 0.5  # every duplicate arrives while the first is still generating
    rows_before, blobs_before = stored(server, client)

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            return http.post("/image/", json={"prompt": "a duplicate"}, headers={"Idempotency-Key": "dup-1"})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    assert len({r.json()["guid"] for r in responses}) == 1
    assert len(fake_openai.generations) == 1
    assert stored(server, client) == (rows_before + 1, blobs_before + 1)


def test_the_same_key_with_another_body_is_a_conflict(client, fake_openai):
    headers = {"Idempotency-Key": "conflict-1"}
    assert client.post("/image/", json={"prompt": "first"}, headers=headers).status_code == 200
    response = client.post("/image/", json={"prompt": "second"}, headers=headers)
    assert response.status_code == 409 and response.json()["code"] == "idempotency_conflict"
    assert len(fake_openai.generations) == 1


def test_a_failed_generation_does_not_use_up_its_key(client, fake_openai):
    headers = {"Idempotency-Key": "after-failure-1"}
    fake_openai.fail_next("content_policy")
    assert client.post("/image/", json={"prompt": "again"}, headers=headers).status_code == 422
    response = client.post("/image/", json={"prompt": "again"}, headers=headers)
    assert response.status_code == 200 and len(fake_openai.generations) == 2
