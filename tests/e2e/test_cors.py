"""CORS: off unless PIXYPROXY_CORS_ORIGINS names origins; then only those get the headers."""

from starlette.middleware.cors import CORSMiddleware
from starlette.testclient import TestClient

from tests.support.embedded import in_process_app

ALLOWED = "https://app.example"
PREFLIGHT = {
    "Origin": ALLOWED,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
}


def test_cors_is_off_by_default(tmp_path):
    app = in_process_app(tmp_path)
    assert CORSMiddleware not in {m.cls for m in app.user_middleware}
    with TestClient(app) as client:
        response = client.get("/image/", headers={"Origin": ALLOWED})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers
        preflight = client.options("/image/", headers=PREFLIGHT)
        assert "access-control-allow-origin" not in preflight.headers
        assert preflight.status_code == 405


def test_configured_origins_get_cors_headers_and_others_do_not(tmp_path):
    app = in_process_app(tmp_path, cors_origins=f"{ALLOWED}, https://other.example")
    with TestClient(app) as client:
        preflight = client.options("/image/", headers=PREFLIGHT)
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ALLOWED
        assert "POST" in preflight.headers["access-control-allow-methods"]
        allowed_headers = preflight.headers["access-control-allow-headers"].lower()
        assert {"authorization", "content-type", "idempotency-key", "x-api-key"} <= {
            h.strip() for h in allowed_headers.split(",")
        }
        assert "access-control-allow-credentials" not in preflight.headers

        created = client.post("/image/", json={"prompt": "cors"}, headers={"Origin": ALLOWED})
        assert created.status_code == 200
        assert created.headers["access-control-allow-origin"] == ALLOWED
        exposed = created.headers["access-control-expose-headers"].lower()
        assert "x-request-id" in exposed and "link" in exposed and "retry-after" in exposed

        foreign = client.get("/image/", headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 200  # CORS is the browser's check; the server just omits the grant
        assert "access-control-allow-origin" not in foreign.headers
        refused = client.options("/image/", headers={**PREFLIGHT, "Origin": "https://evil.example"})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers


def test_preflights_need_no_key_and_refusals_still_carry_cors_headers(tmp_path):
    app = in_process_app(tmp_path, cors_origins=ALLOWED, api_keys="cors-key-9d2")
    with TestClient(app) as client:
        preflight = client.options("/image/", headers=PREFLIGHT)  # browsers send no credentials here
        assert preflight.status_code == 200
        refused = client.get("/image/", headers={"Origin": ALLOWED})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == ALLOWED  # so the page can read the error
        ok = client.get("/image/", headers={"Origin": ALLOWED, "X-API-Key": "cors-key-9d2"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ALLOWED
