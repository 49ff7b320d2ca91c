"""Adapters: one implementation of a port per module. Only the container names them."""
