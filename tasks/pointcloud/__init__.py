"""Rotation-invariant point-cloud classification and part segmentation."""
