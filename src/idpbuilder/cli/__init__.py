"""Command-line interface: one module per command; only this package prints."""
