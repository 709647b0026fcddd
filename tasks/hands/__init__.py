"""Two-hand 3D reconstruction."""
