"""The journal: every call recorded before and after it runs, tamper-evident and replayable.

Records are chained (each carries its predecessor's hash) in many independent chains, one per
writer lane, each its own Table partition; every record is also a write-once blob; a timer seals
the chains periodically (a Merkle root in the write-once container). ``Verifier`` recomputes it
all and names what was edited, deleted, inserted, reordered or replaced. Nothing runs unjournaled.
Design: docs/journal.md.
"""

from broker.journal.findings import IntegrityFinding, VerifyReport
from broker.journal.query import AUDITOR_ROLE, JournalQuery, parse_when, require_auditor
from broker.journal.reader import JournalReader, StoredRecord
from broker.journal.records import SCHEMA_VERSION, Event, JournalRecord
from broker.journal.replay import replay_json, replay_text
from broker.journal.seal import Seal, SealConflict, Sealer
from broker.journal.storage import ImmutableCopyExists, JournalStorage
from broker.journal.verify import Verifier
from broker.journal.writer import JournalWriter

__all__ = [
    "AUDITOR_ROLE", "SCHEMA_VERSION", "Event", "ImmutableCopyExists", "IntegrityFinding",
    "JournalQuery", "JournalReader", "JournalRecord", "JournalStorage", "JournalWriter", "Seal", "SealConflict",
    "Sealer", "StoredRecord", "Verifier", "VerifyReport", "parse_when", "replay_json", "replay_text", "require_auditor",
]
