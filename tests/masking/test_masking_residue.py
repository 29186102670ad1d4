"""Known-plaintext masking's last check (``broker/masking/residue.py``): command output that a pod's
tools transformed past every listed spelling is withheld whole; ordinary output is left alone."""

from __future__ import annotations

import base64
from collections import Counter

import pytest

from broker.masking.known import KnownPlaintext

VALUE = b"S3cr3t-demo-password"


class _Placeholders:
    def placeholder(self, kind: str, value: object) -> str:
        return f"[{kind}:000000]"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _xxd(data: bytes, width: int = 16) -> str:
    lines = []
    for off in range(0, len(data), width):
        chunk = data[off:off + width]
        groups = " ".join(chunk[i:i + 2].hex() for i in range(0, len(chunk), 2))
        lines.append(f"{off:08x}: {groups}  {chunk.decode()}")
    return "\n".join(lines) + "\n"


def _od_o2(data: bytes) -> str:
    words = [int.from_bytes(data[i:i + 2].ljust(2, b"\0"), "little") for i in range(0, len(data), 2)]
    return "\n".join(f"{off * 2:07o} " + " ".join(f"{w:06o}" for w in words[off:off + 8])
                     for off in range(0, len(words), 8)) + "\n"


@pytest.mark.parametrize("text", [
    _xxd(VALUE), _xxd(VALUE, 4), _od_o2(VALUE),
    _b64(_b64(VALUE).encode()) + "\n", _b64(VALUE[::-1]) + "\n", _b64(VALUE)[::-1] + "\n",
    VALUE.hex()[::-1] + "\n", "\n".join(VALUE[i:i + 7].decode()[::-1] for i in range(0, len(VALUE), 7)),
    " ".join(VALUE.decode()) + "\n",
])
def test_transformed_values_withhold_the_whole_output(text: str) -> None:
    counts: Counter[str] = Counter()
    got = KnownPlaintext([VALUE]).mask_text(text, _Placeholders(), counts, lines=True)
    assert got == "[secret:000000]" and counts["secret"] >= 1


@pytest.mark.parametrize("text", [
    "GET /health 200 12ms\nGET /api/orders 200 31ms\n",
    "image: web@sha256:" + "ab" * 32 + "\n",
    _xxd(b"nothing secret in here at all\n"),
    _b64(b"an ordinary base64 blob of text") + "\n",
])
def test_ordinary_output_is_left_alone(text: str) -> None:
    assert KnownPlaintext([VALUE]).mask_text(text, _Placeholders(), Counter(), lines=True) == text



def test_a_dump_after_more_text_than_one_view_holds_is_still_found() -> None:
    """Past the first view's 4 MB the text is read in overlapping windows: a dump placed after the
    filler, or across a window's edge, is withheld like one at the start."""
    from broker.masking import residue

    filler = "GET /health 200 12ms\n" * (residue.MAX_VIEW_CHARS // 21 + 1)
    edge = filler.rindex("\n", 0, residue.MAX_VIEW_CHARS - 40) + 1  # the dump starts 40 characters before the edge
    for text in (filler + _xxd(VALUE), filler[:edge] + _xxd(VALUE) + filler):
        got = KnownPlaintext([VALUE]).mask_text(text, _Placeholders(), Counter(), lines=True)
        assert got == "[secret:000000]"


@pytest.mark.parametrize("argv", [["xxd"], ["xxd", "-c", "4"], ["xxd", "-p"], ["od", "-t", "o2"],
                                  ["od", "-A", "x", "-t", "x1"], ["od", "-t", "x1z"], ["od", "-c"],
                                  ["hexdump", "-C"], ["base64"]])
def test_the_real_tools_output_is_withheld(argv: list[str]) -> None:
    """The same check against what the real programs print (not only our imitations of them)."""
    import shutil
    import subprocess

    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed here")
    out = subprocess.run(argv, input=VALUE + b"\n", capture_output=True, check=True).stdout.decode()
    got = KnownPlaintext([VALUE]).mask_text(out, _Placeholders(), Counter(), lines=True)
    # withheld whole, or (hex and base64 of the exact value) masked where it stands: no spelling left
    assert got.startswith("[secret:000000]") and len(got) <= len("[secret:000000]") + 8, (out, got)
