"""API keys over real HTTP: who gets in, the 401 shape, and that no secret leaks anywhere."""

import hashlib
import hmac

import httpx
import pytest

from pixyproxy.entrypoints.middleware import api_keys as auth
from pixyproxy.entrypoints.middleware.api_keys import ApiKeyCheck, load_key_digests
from tests.e2e.server import run_server

ENV_KEYS = ["alpha-canary-key-1b7e4f", "beta-canary-key-93c0d2"]
FILE_KEY = "gamma-canary-key-5a8e61"
OPENAI_KEY = "sk-openai-canary-0f3d9b27"
SECRETS = [*ENV_KEYS, FILE_KEY, OPENAI_KEY]

PROTECTED = [
    ("GET", "/image/"),
    ("GET", "/image"),
    ("POST", "/image/"),
    ("POST", "/image"),
    ("GET", "/image/00000000-0000-4000-8000-000000000000"),
    ("GET", "/image/00000000-0000-4000-8000-000000000000/content"),
    ("HEAD", "/image/00000000-0000-4000-8000-000000000000/content"),
    ("GET", "/image/00000000-0000-4000-8000-000000000000/url"),
    ("GET", "/no-such-route"),
]
WRONG_CREDENTIALS = [
    {},
    {"Authorization": "Bearer not-a-key"},
    {"Authorization": "Bearer"},
    {"Authorization": f"Basic {ENV_KEYS[0]}"},
    {"Authorization": ENV_KEYS[0]},  # no scheme
    {"Authorization": f"Bearer {ENV_KEYS[0][:-1]}"},  # a prefix of a key
    {"Authorization": f"Bearer {ENV_KEYS[0]}x"},  # a key plus one character
    {"Authorization": f"Bearer {ENV_KEYS[0]},{ENV_KEYS[1]}"},  # the raw setting is not a key
    {"X-API-Key": "not-a-key"},
    {"X-API-Key": ""},
    {"X-API-Key": hashlib.sha256(FILE_KEY.encode()).hexdigest()},  # the stored digest is not a key
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("auth")
    keys_file = workdir / "keys.sha256"
    digest = hashlib.sha256(FILE_KEY.encode()).hexdigest().upper()  # hex in either case
    keys_file.write_text(f"# one SHA-256 hex digest per line\n\n{digest}  # ops team\n")
    env = {
        "PIXYPROXY_API_KEYS": f" {ENV_KEYS[0]} ,{ENV_KEYS[1]},",
        "PIXYPROXY_API_KEYS_FILE": str(keys_file),
        "OPENAI_API_KEY": OPENAI_KEY,
        "PIXYPROXY_LOG_LEVEL": "DEBUG",
    }
    with run_server(workdir, env) as running:
        yield running


@pytest.fixture(scope="module")
def seen(server):
    """Every response body and header the tests of this module receive, to grep for secrets at the end."""
    return []


@pytest.fixture
def client(server, seen):
    def record(response):
        response.read()
        seen.append(response.text)
        seen.append(str(dict(response.headers)))

    with httpx.Client(
        base_url=server.base_url, timeout=30, event_hooks={"response": [record]}, follow_redirects=False
    ) as http:
        yield http


def assert_unauthorized(response):
    assert response.status_code == 401, (response.request.method, response.request.url, response.text)
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["x-request-id"]
    if response.request.method == "HEAD":
        return
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail", "code", "request_id"}
    assert body["code"] == "unauthorized"
    assert body["request_id"] == response.headers["x-request-id"]


def test_health_and_readiness_need_no_key(client):
    for path in ("/healthz", "/readyz"):
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_other_route_refuses_a_request_without_a_key(client, method, path):
    assert_unauthorized(client.request(method, path, json={"prompt": "x"} if method == "POST" else None))


@pytest.mark.parametrize("headers", WRONG_CREDENTIALS, ids=range(len(WRONG_CREDENTIALS)))
def test_wrong_or_malformed_credentials_are_refused(client, headers):
    assert_unauthorized(client.get("/image/", headers=headers))
    assert_unauthorized(client.post("/image/", json={"prompt": "should not be drawn"}, headers=headers))


def test_refused_requests_store_nothing(client, server):
    key = {"Authorization": f"Bearer {ENV_KEYS[0]}"}
    before = client.get("/image/", params={"limit": 1000}, headers=key).json()
    for headers in WRONG_CREDENTIALS:
        assert_unauthorized(client.post("/image/", json={"prompt": "refused"}, headers=headers))
    assert client.get("/image/", params={"limit": 1000}, headers=key).json() == before


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {ENV_KEYS[0]}"},
        {"Authorization": f"bearer {ENV_KEYS[1]}"},  # the scheme is case-insensitive
        {"X-API-Key": ENV_KEYS[1]},
        {"Authorization": f"Bearer {FILE_KEY}"},  # from the file of digests
        {"X-API-Key": FILE_KEY},
    ],
    ids=["bearer", "bearer-lowercase", "x-api-key", "file-bearer", "file-x-api-key"],
)
def test_a_valid_key_opens_every_route(client, headers):
    created = client.post("/image/", json={"prompt": "a key that works"}, headers=headers)
    assert created.status_code == 200, created.text
    guid = created.json()["guid"]
    assert client.get(f"/image/{guid}", headers=headers).json() == created.json()
    content = client.get(f"/image/{guid}/content", headers=headers)
    assert content.status_code == 200 and content.content.startswith(b"\x89PNG")
    assert client.head(f"/image/{guid}/content", headers=headers).status_code == 200
    assert client.get(f"/image/{guid}/url", headers=headers).status_code == 200
    listed = client.get("/image", headers=headers)
    assert listed.status_code == 200 and guid in {item["guid"] for item in listed.json()}
    # A valid key does not make an unknown route exist.
    assert client.get("/no-such-route", headers=headers).status_code == 404


def test_docs_are_public_and_declare_the_security_schemes(client):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    spec = schema.json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["BearerApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["BearerApiKey"]["description"],
    }
    assert schemes["HeaderApiKey"]["type"] == "apiKey"
    assert schemes["HeaderApiKey"]["in"] == "header"
    assert schemes["HeaderApiKey"]["name"] == "X-API-Key"
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if path in ("/healthz", "/readyz", "/"):  # "/": the gallery page, which holds no data
                assert operation["security"] == [], (method, path)
            else:
                assert operation["security"] == [{"BearerApiKey": []}, {"HeaderApiKey": []}], (method, path)
                shape = "OpenAIError" if path.startswith("/v1/") else "ErrorModel"  # the /v1 face: OpenAI's
                assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
                    "$ref": f"#/components/schemas/{shape}"
                }


def test_no_key_appears_in_responses_docs_or_the_log(client, server, seen):
    # Send every secret the wrong way too: a wrong key must not be echoed back or logged either.
    for secret in SECRETS:
        client.get("/image/", headers={"Authorization": f"Bearer {secret}x"})
        client.get("/image/", headers={"X-API-Key": f"{secret}x"})
        client.post("/image/", headers={"Authorization": f"Bearer {secret}"}, json={"prompt": secret})
        client.get("/image/", params={"cursor": secret}, headers={"Authorization": f"Bearer {ENV_KEYS[0]}"})
    client.get("/docs")
    client.get("/openapi.json")
    client.get("/redoc")
    texts = "\n".join(seen)
    log = server.log_text()
    assert "REQUEST END" in log and "refused" in log  # the log is the one these requests wrote
    for secret in SECRETS:
        # A prompt is data the client chose to store: strip the echoes of the prompts sent above.
        leaked = texts.replace(f'"prompt":"{secret}"', "")
        assert secret not in leaked, f"{secret} appeared in a response"
        assert secret not in log, f"{secret} appeared in the server log"


def test_a_server_without_keys_is_open_and_documents_no_scheme(tmp_path):
    with run_server(tmp_path) as running, httpx.Client(base_url=running.base_url, timeout=30) as http:
        assert http.get("/image/").status_code == 200
        spec = http.get("/openapi.json").json()
        assert "securitySchemes" not in spec.get("components", {})
        assert all("security" not in op for item in spec["paths"].values() for op in item.values())


def test_a_file_line_that_is_not_a_digest_stops_the_start_without_echoing_it(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"{hashlib.sha256(b'x').hexdigest()}\nraw-key-pasted-by-mistake\n")
    with pytest.raises(ValueError, match=r"keys:2: not a SHA-256 hex digest") as raised:
        load_key_digests(None, keys_file)
    assert "raw-key-pasted-by-mistake" not in str(raised.value)
    with pytest.raises(RuntimeError, match="server exited") as failed:  # noqa: SIM117
        with run_server(tmp_path, {"PIXYPROXY_API_KEYS_FILE": str(keys_file)}, timeout=20):
            pass
    assert "raw-key-pasted-by-mistake" not in str(failed.value)


def test_every_configured_digest_is_compared_in_constant_time(monkeypatch):
    digests = [*load_key_digests(",".join(ENV_KEYS), None), hashlib.sha256(FILE_KEY.encode()).digest()]
    check = ApiKeyCheck(digests=digests)
    calls = []
    real_compare = hmac.compare_digest

    def counting(a, b):
        calls.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    for key, expected in [(ENV_KEYS[0], True), (FILE_KEY, True), ("wrong", False)]:
        calls.clear()
        assert (check.identify(key) is not None) is expected
        # Every digest is compared, whether the first matches or none does; all inputs are equal-length
        # digests, never the raw key.
        assert len(calls) == len(digests)
        assert all(len(a) == len(b) == 32 for a, b in calls)
    assert check.identify(None) is None
    assert check.identify(ENV_KEYS[0]) != check.identify(ENV_KEYS[1])
    assert ENV_KEYS[0] not in check.identify(ENV_KEYS[0])


def test_the_openai_key_never_reaches_a_client_or_the_log_even_when_the_provider_quotes_it(
    tmp_path, fake_openai
):
    """The real service with the OpenAI adapter against the fake, which quotes the key in its 401 text."""
    env = {
        "PIXYPROXY_GENERATOR": "openai",
        "PIXYPROXY_OPENAI_MAX_RETRIES": "0",
        "PIXYPROXY_API_KEYS": ENV_KEYS[0],
        "PIXYPROXY_LOG_LEVEL": "DEBUG",
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": fake_openai.base_url,
    }
    bodies = []
    with run_server(tmp_path, env) as running, httpx.Client(base_url=running.base_url, timeout=60) as http:
        key = {"Authorization": f"Bearer {ENV_KEYS[0]}"}
        for failure in ("unauthorized", "server_error", "content_policy", "garbage", None):
            if failure:
                fake_openai.fail_next(failure)
            response = http.post("/image/", json={"prompt": "a fox"}, headers=key)
            if failure is None:
                assert response.status_code == 200, response.text
            else:  # mapped to a 4xx/5xx of the one shape, never a 500
                assert response.status_code in (422, 502, 503, 504), (failure, response.text)
                assert set(response.json()) == {"detail", "code", "request_id"}
            bodies.append(response.text + str(dict(response.headers)))
        bodies.append(http.get("/readyz").text)
        bodies.append(http.get("/openapi.json").text)
        log = running.log_text()
    # The fake really was asked with the key (so there was a key to leak).
    assert any(OPENAI_KEY in r.headers.get("authorization", "") for r in fake_openai.generations)
    for secret in (OPENAI_KEY, OPENAI_KEY[3:], ENV_KEYS[0]):
        assert all(secret not in body for body in bodies), secret
        assert secret not in log, secret
