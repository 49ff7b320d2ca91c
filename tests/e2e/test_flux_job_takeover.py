"""A FLUX job whose process is SIGKILLed while it polls: the next process takes the job over (the jobs'
lease rules), makes exactly n images, and gc finds no orphans."""

import signal
import textwrap

import httpx

from tests.e2e.server import run_server
from tests.e2e.test_jobs_e2e import FAST_JOBS, SHORT_LEASE, ended, files_and_rows, gc, job, submit, wait_for
from tests.support import fake_bfl
from tests.support.fake_bfl import FakeBfl


def test_a_flux_job_killed_while_polling_is_taken_over_with_n_images(tmp_path):
    with FakeBfl(pending_polls=10_000) as flux:  # every task stays Pending until the kill
        models = tmp_path / "models.yaml"
        models.write_text(
            textwrap.dedent(
                f"""\
                models:
                  - name: flux
                    provider: bfl
                    model: flux-2-pro
                    base_url: {flux.base_url}
                    api_key_env: TEST_BFL_KEY
                """
            )
        )
        env = {
            **FAST_JOBS,
            **SHORT_LEASE,
            "PIXYPROXY_MODELS_FILE": str(models),
            "TEST_BFL_KEY": fake_bfl.KEY,
            "PIXYPROXY_JOB_MAX_ATTEMPTS": "2",
        }
        with run_server(tmp_path, env, timeout=60) as first:
            submitted = submit(first, {"prompt": "a lighthouse", "model": "flux", "n": 2})
            wait_for("a task polled", lambda: any(t.polls for t in flux.tasks.values()))
            assert job(first, submitted["id"])["status"] == "running"
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(10)
        flux.pending_polls = 1  # the provider answers now
        with run_server(tmp_path, env, timeout=60) as second:
            done = wait_for("the job to end", ended(second, submitted["id"]), timeout=60)
            assert done["status"] == "succeeded" and done["attempts"] == 2, done
            assert len(done["images"]) == 2 and len({i["guid"] for i in done["images"]}) == 2
            listed = httpx.get(f"{second.base_url}/image/", timeout=10).json()
            assert len(listed) == 2  # never more images than asked
            assert all(i["provider"] == "bfl" for i in listed)
    gc(tmp_path)
    files, rows = files_and_rows(tmp_path)
    assert files == rows
