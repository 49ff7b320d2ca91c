"""PixyProxy's own image (deploy/Dockerfile) for the container tests: PIXYPROXY_TEST_SERVICE_IMAGE when
set, else built here on PIXYPROXY_TEST_PYTHON_IMAGE (e.g. python:3.11-slim-bookworm) or the Python that
deploy/images/build.sh makes from Debian's packages. The tag is a hash of the build's inputs, so an engine
that has it builds nothing again."""

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.containers import image_for

ROOT = Path(__file__).resolve().parents[2]
# What deploy/Dockerfile.dockerignore lets into the build.
CONTEXT = ["pyproject.toml", "requirements.lock", "README.md", "pixyproxy"]


def _context_files() -> list[Path]:
    files = [ROOT / "deploy" / "Dockerfile"]
    for name in CONTEXT:
        path = ROOT / name
        files += (
            sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            )
            if path.is_dir()
            else [path]
        )
    return files


def _tag(base: str) -> str:
    digest = hashlib.sha256(base.encode())
    for path in _context_files():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return f"pixyproxy-test/service:{digest.hexdigest()[:12]}"


def _image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def service_image() -> str:
    if os.environ.get("PIXYPROXY_TEST_SERVICE_IMAGE"):
        return os.environ["PIXYPROXY_TEST_SERVICE_IMAGE"]
    base = image_for("PIXYPROXY_TEST_PYTHON_IMAGE", "python")
    tag = _tag(base)
    if _image_exists(tag):
        return tag
    # Only what the Dockerfile copies: the classic builder ignores deploy/Dockerfile.dockerignore.
    with tempfile.TemporaryDirectory(prefix="pixyproxy-image-") as context:
        for path in _context_files():
            target = Path(context) / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        build = subprocess.run(
            ["docker", "build", "--rm", "--force-rm", "--network", "host",
             "--build-arg", f"PYTHON_IMAGE={base}", "-f", f"{context}/deploy/Dockerfile", "-t", tag, context],
            capture_output=True, text=True, timeout=1500,
        )  # fmt: skip
    if build.returncode != 0:
        raise RuntimeError(f"docker build failed:\n{(build.stdout + build.stderr)[-4000:]}")
    _remove_older_builds(tag)
    return tag


def _remove_older_builds(tag: str) -> None:
    """Each change to the code makes a new tag: keep only the newest on this engine."""
    repository = tag.split(":")[0]
    listed = subprocess.run(["docker", "image", "ls", repository, "--format", "{{.Repository}}:{{.Tag}}"],
                            capture_output=True, text=True)  # fmt: skip
    older = [name for name in listed.stdout.split() if name != tag]
    if older:
        subprocess.run(["docker", "image", "rm", *older], capture_output=True)
