"""The command as approvers see it: whole, canonical, and with hidden characters escaped.

One rendering for the page and the mail: SQL text; kubectl argv (shell-quoted); the complete
manifest as YAML; for a previewed change the masked dry-run diff. Nothing is cut here: the page
scrolls, and the mail says how much more there is and links to the page.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import yaml

from broker.guard.hidden import escaped, findings, is_hidden, segments
from broker.impact import summary


@dataclass(frozen=True)
class Part:
    """One block of what will run (or what it would do): a title, its text, its marked runs."""

    id: str
    title: str
    text: str

    def runs(self) -> list[tuple[str, str, str]]:
        return list(segments(self.text))

    def plain(self) -> str:
        """The text with hidden characters and foreign letters of mixed-script words escaped (mail)."""
        return "".join(shown for _, shown, _ in self.runs())

    def warnings(self) -> list[str]:
        out = []
        for f in findings(self.text):
            if f.kind == "invisible":
                out.append(f"{self.title}: character {f.codepoint} {f.name} at position {f.start}")
            elif f.kind == "confusable":
                out.append(f"{self.title}: {''.join(escaped(c) for c in f.text)} is written in {f.name} "
                           "(it reads as a Latin word and is not one)")
            else:
                out.append(f"{self.title}: identifier {''.join(escaped(c) if is_hidden(c) else c for c in f.text)!r} "
                           f"mixes scripts ({f.name})")
        return out


def parts(command: dict[str, Any], preview: dict[str, Any] | None = None) -> list[Part]:
    """Every block an approver must read, in order."""
    out: list[Part] = []
    if command.get("language") == "sql" or command.get("sql"):
        out.append(Part("command", "SQL", str(command.get("sql", ""))))
    if command.get("argv"):
        out.append(Part("command" if not out else "argv", "kubectl",
                        "kubectl " + " ".join(shlex.quote(str(a)) for a in command["argv"])))
    if command.get("manifest") is not None:
        text = yaml.safe_dump_all(_documents(command["manifest"]), sort_keys=False, allow_unicode=True,
                                  default_flow_style=False, width=100)
        out.append(Part("manifest", "manifest (YAML, complete)", text))
    if preview and preview.get("diff") is not None:
        out.append(Part("diff", "server-side dry run (diff, masked)", str(preview["diff"]) or "(no change)"))
    return out


def _documents(manifest: Any) -> list[Any]:
    if isinstance(manifest, dict) and manifest.get("kind") == "List" and isinstance(manifest.get("items"), list):
        return list(manifest["items"])
    return list(manifest) if isinstance(manifest, list) else [manifest]


WARNINGS_LISTED = 50
"""Hidden characters named one by one in the warning; past that it says how many more (each one is
still shown escaped where it stands): 100,000 zero-width spaces must not make a 10 MB mail."""


def warnings(blocks: list[Part]) -> list[str]:
    found = [w for block in blocks for w in block.warnings()]
    if len(found) <= WARNINGS_LISTED:
        return found
    return [*found[:WARNINGS_LISTED], f"… and {len(found) - WARNINGS_LISTED} more, each shown escaped in place"]


@dataclass(frozen=True)
class MeasuredImpact:
    """An SQL change's measured impact as approvers read it (``broker/impact.py``): one line per
    table ("changes 240 of 240 rows in customers") or why it was not measured, and a masked sample."""

    measured: bool
    lines: list[str]
    columns: list[str]
    rows: list[list[Any]]
    of: int


def text(value: Any) -> str:
    """Any other text approvers read (the agent's reason, names, sampled values, table names) with its
    hidden characters escaped: only the command's are highlighted and warned about, but none renders."""
    return "".join(shown for _, shown, _ in segments(str(value or "")))


def impact(preview: dict[str, Any] | None) -> MeasuredImpact | None:
    found = (preview or {}).get("impact")
    if not isinstance(found, dict):
        return None
    sample = found.get("sample") or {}
    return MeasuredImpact(bool(found.get("measured")), [text(line) for line in summary(found)],
                          [text(c) for c in sample.get("columns", [])],
                          [["NULL" if v is None else text(v) for v in row] for row in sample.get("rows", [])],
                          int(sample.get("of") or 0))
