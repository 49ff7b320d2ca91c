"""Every router the app serves, one module per area; create_app includes them in this order."""

from pixyproxy.entrypoints.routes import edits, gallery, images, jobs, openai_compatible, operations, usage

# jobs first: `/image/{guid}` would take `/image/jobs`. The gallery last: no API request is tried against it.
ROUTERS = [
    jobs.router,
    images.router,
    edits.router,
    operations.router,
    openai_compatible.router,
    usage.router,
    gallery.router,
]
