"""Ports: one typing.Protocol per outside dependency. Adapters implement them; the service uses them."""

from pixyproxy.ports.blobs import BlobStore, BlobStream
from pixyproxy.ports.generator import ImageGenerator
from pixyproxy.ports.metrics import MetricsRecorder
from pixyproxy.ports.repository import ImageRepository

__all__ = ["BlobStore", "BlobStream", "ImageGenerator", "ImageRepository", "MetricsRecorder"]
