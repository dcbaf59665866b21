"""hello."""
