"""Ducky installs only the client: importing it (and the CLI's client side) pulls in no server library."""

import json
import subprocess
import sys

SERVER_ONLY = [
    "fastapi",
    "starlette",
    "uvicorn",
    "aiomysql",
    "pymysql",
    "sqlalchemy",
    "boto3",
    "botocore",
    "openai",
    "PIL",
    "prometheus_client",
    "dependency_injector",
    "pydantic_settings",
    "pixyproxy.domain",
    "pixyproxy.container",
]


def imported_after(statement: str) -> list[str]:
    probe = (
        f"import sys, json\n{statement}\nprint(json.dumps([m for m in {SERVER_ONLY!r} if m in sys.modules]))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_probe_sees_a_server_import():
    # The check below is only worth something if the probe notices an import when there is one.
    assert "fastapi" in imported_after("import fastapi")


def test_importing_the_client_imports_no_server_library():
    assert imported_after("import pixyproxy.client; from pixyproxy.client import *") == []


def test_the_cli_imports_no_server_library_until_a_server_command_runs():
    assert imported_after("import pixyproxy.entrypoints.cli") == []
