"""Neighboring-autoregressive and raster image generation."""
