"""``ResultSet`` carries what every engine returns; what only API engines have (the calls that ran,
a text presentation of the masked document) is ``DocumentResult``, consumed through the declared
protocols ``PresentedResult`` and ``CallsJournaled``: the rendered text never sees a raw value, a
document the text says everything about is dropped, and SQL results journal no calls."""

from __future__ import annotations

import dataclasses
from typing import Any

from broker.catalog import Target
from broker.execute.masking import api_calls, mask_result
from broker.masking import Masker
from broker.targets.base import CallsJournaled, DocumentResult, Presentation, PresentedResult, ResultSet

TARGET = Target(name="t", engine="kubernetes", credential={"source": "key-vault", "secret": "s"})
CARD = "4111 1111 1111 1111"
CALL = {"group": "", "version": "v1", "resource": "pods", "verb": "list"}


class PlainEngine:
    """No structural masking: only the generic scan applies."""


def _render(document: Any) -> str:
    return f"note: {document['note']}\n"


def test_text_is_rendered_from_the_masked_document_and_the_document_dropped():
    result = DocumentResult(document={"note": f"card {CARD}"}, rendering=Presentation(_render), operations=[CALL])
    counts = mask_result(PlainEngine(), Masker(b"k" * 32), result, TARGET)  # type: ignore[arg-type]
    assert result.text is not None and result.text.startswith("note: card ") and CARD not in result.text
    assert result.document is None and counts
    assert api_calls(result) == [CALL]


def test_a_kept_document_stays_masked_beside_its_text():
    result = DocumentResult(document={"note": CARD}, rendering=Presentation(_render, keep_document=True))
    mask_result(PlainEngine(), Masker(b"k" * 32), result, TARGET)  # type: ignore[arg-type]
    assert result.document is not None and CARD not in str(result.document) and CARD not in (result.text or "")


def test_without_a_presentation_the_result_is_shown_as_it_is():
    result = DocumentResult(document={"note": "plain"})
    mask_result(PlainEngine(), Masker(b"k" * 32), result, TARGET)  # type: ignore[arg-type]
    assert result.document == {"note": "plain"} and result.text is None and api_calls(result) == []


def test_sql_results_have_no_api_fields():
    plain = ResultSet(rows=[[1]])
    names = {f.name for f in dataclasses.fields(ResultSet)}
    assert not names & {"operations", "render", "keep_document", "rendering"}
    assert not isinstance(plain, PresentedResult) and not isinstance(plain, CallsJournaled)
    assert api_calls(plain) == []
    assert isinstance(DocumentResult(), PresentedResult) and isinstance(DocumentResult(), CallsJournaled)
