"""The journal: every call recorded before and after it runs, in Table Storage with write-once
Blob copies. Nothing runs unjournaled."""

from broker.journal.reader import JournalReader
from broker.journal.records import Event, JournalRecord, new_record_id
from broker.journal.storage import JournalStorage
from broker.journal.writer import JournalWriter

__all__ = ["Event", "JournalReader", "JournalRecord", "JournalStorage", "JournalWriter", "new_record_id"]
