"""Entrypoints: the FastAPI app and the CLI."""
