"""Metrics as ``torchmetrics.Metric`` subclasses whose states reduce correctly under DDP."""
