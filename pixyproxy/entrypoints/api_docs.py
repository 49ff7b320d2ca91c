"""/docs (Swagger UI) and /redoc from the files the fastapi-offline package ships (pinned in
requirements.lock), served by the app itself: no CDN, so they work on a network without the internet."""

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI

ASSETS_PATH = "/docs-assets"
_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
# The pages and what they load: public like the pages (the API key middleware leaves them open).
PUBLIC_PATHS = frozenset(
    {
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        *(f"{ASSETS_PATH}/{path.name}" for path in _ASSETS.iterdir() if path.is_file()),
    }
)


def documented_app(**options: Any) -> FastAPI:
    """FastAPI(**options) serving its docs pages and their scripts, styles and icon itself."""
    return fastapi_offline.FastAPIOffline(static_url=ASSETS_PATH, **options)
