"""deploy/Dockerfile's image, built and run: ready, a generation stored and served, the request log
lines in the container's output, and no root anywhere."""

import time

import httpx
import pytest

from tests.support.containers import free_port, host_network_container

pytestmark = pytest.mark.timeout(1800)  # the first build installs every dependency


def test_the_image_serves_stores_and_logs_as_a_non_root_user(pixyproxy_image, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    started = time.monotonic()
    env = {"PIXYPROXY_HOST": "127.0.0.1", "PIXYPROXY_PORT": str(port)}  # the host network: 127.0.0.1 only
    with host_network_container(pixyproxy_image, ["serve"], env, ready, timeout=120) as container:
        print(f"ready {time.monotonic() - started:.1f} s after `docker run`")
        created = httpx.post(f"{base}/image/", json={"prompt": "a lighthouse in a container"}, timeout=30)
        assert created.status_code == 200, created.text
        details = created.json()
        content = httpx.get(f"{base}/image/{details['guid']}/content", timeout=30)
        assert content.status_code == 200 and content.content.startswith(b"\x89PNG")
        assert len(content.content) == details["size_bytes"]

        wrapped = container.get_wrapped_container()
        assert wrapped.exec_run(["id", "-u"]).output.strip() == b"10001"
        processes = wrapped.top(ps_args="-o pid,uid,args")["Processes"]
        assert processes and all(row[1] == "10001" for row in processes), processes
        stored = wrapped.exec_run(["ls", "/data/images"]).output.decode()
        assert details["filename"] in stored  # in the image's volume, as the image's defaults say

        stdout, stderr = container.get_logs()
        log = (stdout + stderr).decode()
        request_id = created.headers["x-request-id"]
        assert f"{request_id} " in log
        lines = [line for line in log.splitlines() if request_id in line]
        assert any("REQUEST START" in line for line in lines), log[-2000:]
        assert any("REQUEST END POST /image/ 200" in line for line in lines), log[-2000:]
    size = wrapped.client.images.get(pixyproxy_image).attrs["Size"]
    print(f"image {pixyproxy_image}: {size / 1e6:.0f} MB")
