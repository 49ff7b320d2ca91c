"""The jobs routes in process (TestClient, embedded default): the contract's shapes, statuses and
headers, and owners with API keys on (another user's job is a 404, an admin sees all)."""

import json

import pytest
from starlette.testclient import TestClient

from pixyproxy.entrypoints.app import create_app
from tests.support.embedded import embedded_container

ALICE, BOB, ROOT = "alice-key-7f3a9c", "bob-key-1e8d42", "root-key-5b6c0a"
KEYS = f"alice:user:{ALICE},bob:user:{BOB},root:admin:{ROOT}"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(tmp_path):
    app = create_app(embedded_container(tmp_path, api_keys=KEYS, job_poll_seconds=0.05))
    with TestClient(app) as http:
        yield http


def done(client: TestClient, job_id: str, key: str) -> dict:
    with client.stream("GET", f"/image/jobs/{job_id}/events", headers=auth(key)) as response:
        assert response.status_code == 200
        name = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and name == "done":
                return json.loads(line.split(":", 1)[1])
    raise AssertionError("the stream ended without done")


def test_a_job_has_the_contracts_shape_and_ends_with_n_images(client):
    response = client.post("/image/jobs", json={"prompt": "a lighthouse", "n": 2}, headers=auth(ALICE))
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/image/jobs/{job['id']}"
    assert set(job) == {
        "id", "status", "created_at", "started_at", "finished_at", "request", "images", "error", "attempts",
        "progress",
    }  # fmt: skip
    assert job["status"] == "queued" and job["request"]["n"] == 2 and "owner" not in job
    assert job["progress"] is None
    ended = done(client, job["id"], ALICE)
    assert ended["status"] == "succeeded" and len(ended["images"]) == 2 and ended["attempts"] == 1
    assert ended["progress"] == 1.0
    assert client.get(f"/image/jobs/{job['id']}/", headers=auth(ALICE)).json() == ended  # the twin path
    for image in ended["images"]:
        assert client.get(f"/image/{image['guid']}/content", headers=auth(ALICE)).status_code == 200
    finished = client.delete(f"/image/jobs/{job['id']}", headers=auth(ALICE))
    assert finished.status_code == 409 and finished.json()["code"] == "job_finished"


def test_another_users_job_is_a_404_and_an_admin_sees_all(client):
    job = client.post("/image/jobs", json={"prompt": "mine"}, headers=auth(ALICE)).json()
    for method, path in [
        ("GET", f"/image/jobs/{job['id']}"),
        ("DELETE", f"/image/jobs/{job['id']}"),
        ("GET", f"/image/jobs/{job['id']}/events"),
    ]:
        response = client.request(method, path, headers=auth(BOB))
        assert response.status_code == 404 and response.json()["code"] == "job_not_found", path
    assert client.get("/image/jobs", headers=auth(BOB)).json() == []
    assert [j["id"] for j in client.get("/image/jobs", headers=auth(ALICE)).json()] == [job["id"]]
    assert [j["id"] for j in client.get("/image/jobs", headers=auth(ROOT)).json()] == [job["id"]]
    assert client.get(f"/image/jobs/{job['id']}", headers=auth(ROOT)).status_code == 200
    assert client.get("/image/jobs").status_code == 401


def test_idempotency_key_over_http(client):
    body = {"prompt": "once"}
    first = client.post("/image/jobs", json=body, headers={**auth(ALICE), "Idempotency-Key": "k1"})
    again = client.post("/image/jobs", json=body, headers={**auth(ALICE), "Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 202 and again.json()["id"] == first.json()["id"]
    other = client.post(
        "/image/jobs", json={"prompt": "twice"}, headers={**auth(ALICE), "Idempotency-Key": "k1"}
    )
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    bobs = client.post("/image/jobs", json=body, headers={**auth(BOB), "Idempotency-Key": "k1"})
    assert bobs.status_code == 202 and bobs.json()["id"] != first.json()["id"]


def test_the_list_pages_with_link_and_filters_by_status(client):
    made = [
        client.post("/image/jobs", json={"prompt": f"p{i}"}, headers=auth(ALICE)).json() for i in range(3)
    ]
    for job in made:
        done(client, job["id"], ALICE)
    page = client.get("/image/jobs?limit=2", headers=auth(ALICE))
    assert [j["id"] for j in page.json()] == [made[2]["id"], made[1]["id"]]
    assert 'rel="next"' in page.headers["link"]
    next_url = page.headers["link"].split(">", 1)[0].lstrip("<")
    rest = client.get(next_url, headers=auth(ALICE))
    assert [j["id"] for j in rest.json()] == [made[0]["id"]] and "link" not in rest.headers
    assert len(client.get("/image/jobs?status=succeeded", headers=auth(ALICE)).json()) == 3
    assert client.get("/image/jobs?status=queued", headers=auth(ALICE)).json() == []


def test_post_image_still_refuses_n_above_one(client):
    response = client.post("/image/", json={"prompt": "x", "n": 2}, headers=auth(ALICE))
    assert response.status_code == 422 and "/image/jobs" in response.json()["detail"]


def test_a_deleted_image_stays_in_its_job_marked_deleted(client):
    job = client.post("/image/jobs", json={"prompt": "two of them", "n": 2}, headers=auth(ALICE)).json()
    ended = done(client, job["id"], ALICE)
    assert [image["deleted"] for image in ended["images"]] == [False, False]
    gone, kept = ended["images"]
    assert client.delete(f"/image/{gone['guid']}", headers=auth(ALICE)).status_code == 204
    for shown in (
        client.get(f"/image/jobs/{job['id']}", headers=auth(ALICE)).json(),
        client.get("/image/jobs", headers=auth(ALICE)).json()[0],
    ):
        assert shown["status"] == "succeeded"
        assert [(i["guid"], i["deleted"]) for i in shown["images"]] == [
            (gone["guid"], True),
            (kept["guid"], False),
        ]
    assert client.get(f"/image/{gone['guid']}", headers=auth(ALICE)).status_code == 404
