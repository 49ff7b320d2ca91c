"""API keys as tenants over HTTP against the fake OpenAI server: two user keys isolated on every route
the app has (read from its OpenAPI document, so a route added later is covered), an admin key sees both;
usage totals are the tokens the fake reported; a budget reached is a 429 before any provider call."""

import hashlib
import re
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import run_server
from tests.support.fake_openai import DEFAULT_MODEL, FakeOpenAI

KEYS = {"ann": "ann-secret-key-1", "bob": "bob-secret-key-2", "root": "root-secret-key-3"}
ROLES = {"ann": "user", "bob": "user", "root": "admin"}
# The only methods a tenancy check sends bodies with: a valid one, so only ownership can refuse it.
BODIES = {"/image/{guid}/edits": {"prompt": "make it blue"}}


def keys_file(tmp_path) -> str:
    path = tmp_path / "keys"
    lines = [f"{name}:{ROLES[name]}:{hashlib.sha256(key.encode()).hexdigest()}" for name, key in KEYS.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def env_for(tmp_path, fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {
        "PIXYPROXY_GENERATOR": "openai",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "sk-test-not-a-real-key-0000",
        "PIXYPROXY_OPENAI_MAX_RETRIES": "0",
        "PIXYPROXY_API_KEYS_FILE": keys_file(tmp_path),
        "PIXYPROXY_PRICES": f'{{"{DEFAULT_MODEL}": {{"input_per_million": 5, "output_per_million": 40}}}}',
        **extra,
    }


def client(base_url: str, name: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {KEYS[name]}"}, timeout=30)


def wait_for_job(http: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + 20
    while True:  # polled: the job runs in the server's worker, another process
        job = http.get(f"/image/jobs/{job_id}").json()
        if job.get("status") in ("succeeded", "failed", "canceled") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def owned_routes(spec: dict) -> list[tuple[str, str]]:
    """(method, path) of every operation on one image or one job."""
    return [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if re.search(r"\{(guid|job_id)\}", path)
        for method in item
        if method in ("get", "head", "post", "delete", "put", "patch")
    ]


def test_two_user_keys_are_isolated_on_every_route_and_an_admin_sees_both(tmp_path, fake_openai):
    with (
        run_server(tmp_path, env_for(tmp_path, fake_openai)) as server,
        client(server.base_url, "ann") as ann,
        client(server.base_url, "bob") as bob,
        client(server.base_url, "root") as root,
    ):
        anns = ann.post("/image/", json={"prompt": "ann's lighthouse"}).json()
        bobs = bob.post("/image/", json={"prompt": "bob's owl"}).json()
        assert (anns["owner"], bobs["owner"]) == ("ann", "bob")
        ids = {"guid": anns["guid"]}
        spec = ann.get("/openapi.json").json()
        if "/image/jobs" in spec["paths"]:
            job = ann.post("/image/jobs", json={"prompt": "ann's job", "n": 1})
            assert job.status_code == 202, job.text
            ids["job_id"] = job.json()["id"]
            assert wait_for_job(ann, ids["job_id"])["status"] == "succeeded"

        if "/v1/images/generations" in spec["paths"]:  # the OpenAI-compatible face stores images too
            before = {d["guid"] for d in ann.get("/image/").json()}
            made = ann.post("/v1/images/generations", json={"prompt": "ann's heron via v1"})
            assert made.status_code == 200, made.text
            (v1_guid,) = {d["guid"] for d in ann.get("/image/").json()} - before
            assert ann.get(f"/image/{v1_guid}").json()["owner"] == "ann"
            assert bob.get(f"/image/{v1_guid}/content").status_code == 404

        routes = owned_routes(spec)
        assert ("GET", "/image/{guid}") in routes and ("GET", "/image/{guid}/content") in routes
        for method, template in routes:
            path = re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), m.group(0)), template)
            if "{" in path:
                continue  # no such resource made here (a route of a feature not configured)
            body = BODIES.get(template)
            answer = bob.request(method, path, json=body)
            assert answer.status_code == 404, f"{method} {template}: {answer.status_code} {answer.text}"
            if method != "HEAD":
                assert answer.json()["code"].endswith("not_found"), (template, answer.text)

        # The list: each user its own; the admin both.
        assert [d["guid"] for d in bob.get("/image/").json()] == [bobs["guid"]]
        assert bobs["guid"] not in {d["guid"] for d in ann.get("/image/").json()}
        everyone = {d["guid"] for d in root.get("/image/").json()}
        assert {anns["guid"], bobs["guid"]} <= everyone
        if "job_id" in ids:
            assert ids["job_id"] not in str(bob.get("/image/jobs").json())

        # The admin reads, serves and edits another key's image; its owner stays.
        for path in (
            f"/image/{anns['guid']}",
            f"/image/{anns['guid']}/content",
            f"/image/{anns['guid']}/url",
        ):
            assert root.get(path).status_code == 200, path
        assert root.get(f"/image/{anns['guid']}").json()["owner"] == "ann"
        if ("POST", "/image/{guid}/edits") in routes:
            edited = root.post(f"/image/{anns['guid']}/edits", json={"prompt": "in red"})
            assert edited.status_code == 200 and edited.json()["owner"] == "root"
        if ("DELETE", "/image/{guid}") in routes:
            assert root.delete(f"/image/{bobs['guid']}").status_code in (200, 204)
            assert bob.get(f"/image/{bobs['guid']}").status_code == 404


def test_usage_totals_are_the_tokens_the_provider_reported(tmp_path, fake_openai):
    with (
        run_server(tmp_path, env_for(tmp_path, fake_openai)) as server,
        client(server.base_url, "ann") as ann,
        client(server.base_url, "bob") as bob,
        client(server.base_url, "root") as root,
    ):
        made = [ann.post("/image/", json={"prompt": f"a fox number {i}"}).json() for i in range(3)]
        made.append(ann.post(f"/image/{made[0]['guid']}/edits", json={"prompt": "blue"}).json())
        bob.post("/image/", json={"prompt": "an owl"}).raise_for_status()
        reported = [d["usage"] for d in made]  # the details carry the usage as the fake reported it
        assert all(u and u["total_tokens"] > 0 for u in reported)

        mine = ann.get("/usage").json()
        assert [line["key"] for line in mine["keys"]] == ["ann"]
        line = mine["keys"][0]
        assert line["images"] == 4
        assert line["input_tokens"] == sum(u["input_tokens"] for u in reported)
        assert line["output_tokens"] == sum(u["output_tokens"] for u in reported)
        assert line["total_tokens"] == sum(u["total_tokens"] for u in reported)
        cost = sum(u["input_tokens"] * 5 / 1e6 + u["output_tokens"] * 40 / 1e6 for u in reported)
        assert line["estimated_cost_usd"] == pytest.approx(cost)
        assert sum(d["estimated_cost_usd"] for d in made) == pytest.approx(cost)
        # The provider saw exactly the calls that were counted.
        assert len(fake_openai.generations) + len(fake_openai.edits) == 5

        assert [(x["key"], x["images"]) for x in root.get("/usage").json()["keys"]] == [
            ("ann", 4),
            ("bob", 1),
        ]
        assert bob.get("/usage", params={"since": "2000-01-01", "until": "2000-01-02"}).json()["keys"] == [
            {
                "key": "bob",
                "images": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "total_tokens": 0,
                "estimated_cost_usd": 0.0,
            }
        ]
        for bad in (
            {"since": "yesterday"},
            {"until": "1700000000"},
            {"since": "2026-02-30"},
            {"since": "2026-01-02", "until": "2026-01-01"},
        ):
            answer = ann.get("/usage", params=bad)
            assert answer.status_code == 422 and answer.json()["code"] == "invalid_request", bad

        # Every key's usage is at /metrics: a user key is refused it, as it is refused others' /usage.
        for user in (ann, bob):
            assert user.get("/metrics").status_code == 403
        metrics = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(root.get("/metrics").text)
            for s in family.samples
        }
        assert metrics[("pixyproxy_key_images_total", (("key", "ann"),))] == 4
        assert metrics[("pixyproxy_key_images_total", (("key", "bob"),))] == 1
        assert metrics[("pixyproxy_key_tokens_total", (("direction", "output"), ("key", "ann")))] == sum(
            u["output_tokens"] for u in reported
        )


def test_a_budget_reached_is_a_429_before_the_provider_is_called(tmp_path, fake_openai):
    env = env_for(tmp_path, fake_openai, PIXYPROXY_BUDGETS='{"ann": {"images_per_day": 2}}')
    with (
        run_server(tmp_path, env) as server,
        client(server.base_url, "ann") as ann,
        client(server.base_url, "bob") as bob,
    ):
        first = ann.post("/image/", json={"prompt": "a fox"}).json()
        assert ann.post(f"/image/{first['guid']}/edits", json={"prompt": "blue"}).status_code == 200
        calls = len(fake_openai.requests)
        for attempt in (
            lambda: ann.post("/image/", json={"prompt": "a fox"}),
            lambda: ann.post(f"/image/{first['guid']}/edits", json={"prompt": "red"}),
        ):
            refused = attempt()
            assert refused.status_code == 429, refused.text
            assert refused.json()["code"] == "budget_exceeded"
            assert "T00:00:00Z" in refused.json()["detail"]  # when it starts again
            assert 0 < int(refused.headers["Retry-After"]) <= 24 * 3600
        assert len(fake_openai.requests) == calls  # the provider was never asked
        assert bob.post("/image/", json={"prompt": "an owl"}).status_code == 200  # bob has no budget set
        assert not re.search(r" (ERROR|CRITICAL) |Traceback", server.log_text())
