"""Vectorised geometry ops: rotated boxes, rotations, point sets."""
