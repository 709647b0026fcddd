"""visionkit: a PyTorch Lightning framework for geometric vision and 3D training."""

__version__ = "0.1.0"

__all__ = ["__version__"]
