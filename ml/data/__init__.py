"""Data: sources, the synthetic generator, acquisition and approved-dataset versions."""
