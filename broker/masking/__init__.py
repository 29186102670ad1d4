"""Masking of every value before it leaves the broker: secrets and personal data become typed,
keyed placeholders such as ``[email:7f3a9c]`` (equal values stay equal; nothing is revealed).

One engine for every output shape: rows (``mask_table``), documents (``mask_document``) and text
(``mask_text``). It fails closed: a value that cannot be scanned is masked whole.
"""

from broker.masking.engine import MaskedTable, Masker, MaskingRules

__all__ = ["MaskedTable", "Masker", "MaskingRules"]
