"""Every router the app serves, one module per area; create_app includes them in this order."""

from pixyproxy.entrypoints.routes import edits, images, operations

ROUTERS = [images.router, edits.router, operations.router]
