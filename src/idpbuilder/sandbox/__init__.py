"""The RUN sandbox."""
