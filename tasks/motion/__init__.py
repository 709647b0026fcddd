"""Equivariant multi-agent motion prediction."""
