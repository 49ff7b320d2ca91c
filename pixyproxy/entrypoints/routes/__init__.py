"""Every router the app serves, one module per area; create_app includes them in this order."""

from pixyproxy.entrypoints.routes import edits, images, jobs, operations

# jobs first: `/image/{guid}` would take `/image/jobs`.
ROUTERS = [jobs.router, images.router, edits.router, operations.router]
