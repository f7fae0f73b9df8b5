"""Partner Gateway: one normalised payment instruction in, any bank or channel out."""

__version__ = "0.1.0"
