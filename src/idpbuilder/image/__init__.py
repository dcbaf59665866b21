"""Images and layers: immutable values over the store's content-addressed blobs."""

from idpbuilder.image.layer import Layer, LayerWriter, decompressing_reader, media_type_for, open_layer
from idpbuilder.image.model import Image, commit_image, select_platform

__all__ = [
    "Image",
    "Layer",
    "LayerWriter",
    "commit_image",
    "decompressing_reader",
    "media_type_for",
    "open_layer",
    "select_platform",
]
