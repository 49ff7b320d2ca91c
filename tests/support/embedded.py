"""An in-process container (and app) on the embedded default in a test's own folder, no .env read."""

from pathlib import Path

from dependency_injector import providers
from fastapi import FastAPI

from pixyproxy.container import Container
from pixyproxy.entrypoints.app import create_app
from pixyproxy.settings import Settings


def embedded_container(folder: Path, **settings) -> Container:
    container = Container()
    defaults = {
        "database_url": f"sqlite:///{folder / 'db.sqlite'}",
        "storage_url": f"file:{folder / 'images'}",
    }
    container.settings.override(providers.Object(Settings(_env_file=None, **(defaults | settings))))
    return container


def in_process_app(folder: Path, **settings) -> FastAPI:
    return create_app(embedded_container(folder, **settings))
