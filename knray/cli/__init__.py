"""The ``knray`` command line."""
