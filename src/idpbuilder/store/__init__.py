"""The local OCI image-layout store."""

from idpbuilder.store.files import BlobWriter, atomic_write
from idpbuilder.store.layout import Store

__all__ = ["BlobWriter", "Store", "atomic_write"]
