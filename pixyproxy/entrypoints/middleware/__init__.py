"""Pure ASGI middleware, one small class per module. Those that refuse a request raise; the error
middleware (errors.py) answers with the one renderer."""
