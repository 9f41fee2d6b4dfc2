"""A tiny stdlib HTML reader for the report tests: table cells, summary cards, images, links."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class ParsedReport:
    """What the tests check in ``index.html``."""

    rows: dict[int, list[tuple[str | None, str]]] = field(default_factory=dict)
    """year -> [(data-value, text)] of the td cells."""
    cards: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    """card key -> (data-value, big value text)."""
    img_src: list[str] = field(default_factory=list)
    hrefs: list[str] = field(default_factory=list)
    script_src: list[str] = field(default_factory=list)
    stylesheet_links: int = 0
    notes: list[str] = field(default_factory=list)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out = ParsedReport()
        self._year: int | None = None
        self._cell: list[str] | None = None
        self._cell_value: str | None = None
        self._card: str | None = None
        self._card_value: str | None = None
        self._card_text: list[str] | None = None
        self._in_notes = False
        self._note: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-year"):
            self._year = int(a["data-year"] or 0)
            self.out.rows[self._year] = []
        elif tag == "td" and self._year is not None:
            self._cell, self._cell_value = [], a.get("data-value")
        elif tag == "li" and a.get("data-card"):
            self._card, self._card_value = a["data-card"], a.get("data-value")
        elif tag == "p" and self._card and "card-value" in (a.get("class") or ""):
            self._card_text = []
        elif tag == "img" and a.get("src"):
            self.out.img_src.append(a["src"] or "")
        elif tag == "a" and a.get("href"):
            self.out.hrefs.append(a["href"] or "")
        elif tag == "script" and a.get("src"):
            self.out.script_src.append(a["src"] or "")
        elif tag == "link" and (a.get("rel") or "") == "stylesheet":
            self.out.stylesheet_links += 1
        elif tag == "section" and "notes" in (a.get("class") or ""):
            self._in_notes = True
        elif tag == "li" and self._in_notes:
            self._note = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._year is not None:
            self.out.rows[self._year].append((self._cell_value, "".join(self._cell).strip()))
            self._cell = None
        elif tag == "tr":
            self._year = None
        elif tag == "p" and self._card_text is not None and self._card:
            self.out.cards[self._card] = (self._card_value, "".join(self._card_text).strip())
            self._card_text = None
        elif tag == "li" and self._card:
            self._card = None
        elif tag == "li" and self._note is not None:
            self.out.notes.append("".join(self._note).strip())
            self._note = None
        elif tag == "section":
            self._in_notes = False

    def handle_data(self, data: str) -> None:
        for sink in (self._cell, self._card_text, self._note):
            if sink is not None:
                sink.append(data)


def parse_report(html: str) -> ParsedReport:
    """Parse the report page."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.out
