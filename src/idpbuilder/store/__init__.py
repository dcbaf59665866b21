"""The local OCI image-layout store."""

from idpbuilder.store.layout import BlobWriter, Store, atomic_write

__all__ = ["BlobWriter", "Store", "atomic_write"]
