"""The gallery's static files (HTML, CSS, JavaScript of the project's own; no build step) and the paths they
are served at. routes/gallery.py serves them; the API key middleware leaves these paths open, since the page
holds no data and must load before it can ask for a key."""

from pathlib import Path

FOLDER = Path(__file__).resolve().parent
PAGE_PATH = "/"
PAGE_FILE = "index.html"
ASSET_PREFIX = "/gallery/"
# Each asset the page links to, by file name, with its media type.
ASSETS = {
    "gallery.css": "text/css; charset=utf-8",
    "gallery.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
PUBLIC_PATHS = frozenset({PAGE_PATH, *(ASSET_PREFIX + name for name in ASSETS)})
