"""Oriented object detection."""
