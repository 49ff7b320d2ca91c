"""Every router the app serves, one module per area; create_app includes them in this order."""

from pixyproxy.entrypoints.routes import (
    edits,
    gallery,
    images,
    jobs,
    models,
    openai_compatible,
    operations,
    usage,
)

# The router tries routes in order: the agreed API's (the hottest reads) first, whose guid never matches
# `jobs` (routes/paths.py); the gallery last, so no API request is tried against it.
ROUTERS = [
    images.router,
    jobs.router,
    edits.router,
    operations.router,
    openai_compatible.router,
    usage.router,
    models.router,
    gallery.router,
]
