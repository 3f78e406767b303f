"""lgcn-tui: LightGCN with text-warm-started item vectors, trained from a steerable terminal dashboard."""

__version__ = "0.1.0"
