"""Masking of every value before it leaves the broker: secrets and personal data become typed,
keyed placeholders such as ``[email:7f3a9c]`` (equal values stay equal; nothing is revealed).

One engine for every output shape: rows (``mask_table``), documents (``mask_document``) and text
(``mask_text``). Name rules first, then one multi-pattern scan of all strings (Hyperscan when
installed, ``re`` otherwise, same results), then exact patterns and validators where something
fired. It fails closed: a value that cannot be scanned is masked whole. It never logs a value.
"""

from broker.masking.engine import MaskedTable, Masker
from broker.masking.placeholder import PLACEHOLDER
from broker.masking.rules import FieldRule, MaskingRules

__all__ = ["PLACEHOLDER", "FieldRule", "MaskedTable", "Masker", "MaskingRules"]
