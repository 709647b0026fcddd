"""Datamodules of the obb family."""
