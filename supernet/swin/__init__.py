"""The Swin family: hierarchical stages, (shifted) window attention, patch merging."""
