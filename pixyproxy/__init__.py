"""PixyProxy: an image-generation proxy. Importing this package imports nothing heavy."""

__version__ = "0.1.0"
