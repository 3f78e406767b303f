"""Item text -> sentence embeddings (``lgcn-tui embed``): readers for item files, the encoder run, the sidecar.

Importing this package is cheap; sentence-transformers is imported only when a model loads.
"""

from .encode import EmbedRequest, EmbedSummary, embed_items, print_summary
from .text import ItemTexts, clean_text, read_item_texts

__all__ = ["EmbedRequest", "EmbedSummary", "ItemTexts", "clean_text", "embed_items", "print_summary",
           "read_item_texts"]
