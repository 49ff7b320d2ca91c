"""Ports: one typing.Protocol per outside dependency, beside the use cases that take them. Adapters
implement them; use cases are typed by them. A port imports the domain's models and errors, never a use
case; import each from its own module (ports.blobs, ports.repository, ...)."""
