"""Data classification: which columns of each SQL target hold secrets or personal data, found by
sampling (``python -m broker data classify``, and the ``data_classify`` timer) and kept, signed, in
Table Storage for lineage (``broker/lineage/sensitivity.py``: free text, masked whole when
transformed) and for review (``python -m broker data show``).

It never changes what the catalog says: declared columns and ``not_sensitive`` win, and a stored
finding can only add sensitivity. Not to be confused with ``broker/discovery.py`` (what an agent
may learn about targets and the policy).
"""

from broker.classification.classifier import MAX_SAMPLE_ROWS, Classifier, ClassifyLimits
from broker.classification.sample import ColumnFinding
from broker.classification.store import ClassificationRun, ClassificationStore, Stored, StoredColumn, derive_key
from broker.classification.wiring import build_classifier, classification_store

__all__ = ["MAX_SAMPLE_ROWS", "ClassificationRun", "ClassificationStore", "Classifier", "ClassifyLimits",
           "ColumnFinding", "Stored", "StoredColumn", "build_classifier", "classification_store", "derive_key"]
