"""Datamodules of the generation family."""
