"""Unit tests of knray.serving (no Ray cluster)."""
