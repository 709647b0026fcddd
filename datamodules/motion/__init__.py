"""Datamodules of the motion family."""
