"""Shared pieces: URIs and I/O, configuration, audit and append-only logs, progress."""
