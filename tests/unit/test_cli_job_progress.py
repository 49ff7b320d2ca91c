"""`generate --async` shows a job's progress: its bar fills (in a terminal) and a log gets a line each
time it passes a quarter, never one per step and none for the end (the status says succeeded)."""

import io
from datetime import UTC, datetime
from uuid import uuid4

from rich.console import Console

from pixyproxy.client import DoneEvent, Job, ProgressEvent, StatusEvent
from pixyproxy.entrypoints.cli.job_view import watch


class ScriptedClient:
    def __init__(self, events: list) -> None:
        self._events = events

    def events(self, job):
        return iter(self._events)


def a_job(status: str, progress: float | None = None, **fields) -> Job:
    return Job(
        id=JOB_ID, status=status, created_at=datetime.now(UTC), request={"prompt": "x"}, progress=progress,
        **fields,
    )  # fmt: skip


JOB_ID = uuid4()


def test_progress_lines_at_each_quarter_passed_and_the_job_as_it_ended():
    ended = a_job("succeeded", 1.0)
    events = [
        StatusEvent(job=a_job("running")),
        *(ProgressEvent(progress=value) for value in (0.05, 0.1, 0.3, 0.31, 0.8, 0.9, 1.0)),
        StatusEvent(job=ended),
        DoneEvent(job=ended),
    ]
    out = io.StringIO()
    final = watch(ScriptedClient(events), a_job("queued"), 0, Console(file=out, width=200))
    short = str(JOB_ID)[:8]
    lines = out.getvalue().splitlines()
    assert [line for line in lines if "%" in line] == [f"job {short} 25%", f"job {short} 75%"]
    assert f"job {short} succeeded" in lines and final == ended


def test_a_job_that_was_taken_over_shows_its_progress_from_its_status():
    running = a_job("running", 0.6, attempts=2)
    out = io.StringIO()
    watch(ScriptedClient([StatusEvent(job=running), DoneEvent(job=running)]), running, 0, Console(file=out))
    assert f"job {str(JOB_ID)[:8]} 50%" in out.getvalue().splitlines()
