"""Datamodules of the hands family."""
