"""The PDFs CaseBridge prints for the compliance file (access reports, the accounting of
disclosures, destruction certificates): one way to start a document.

fpdf2 (with fontTools) adds ~28 MiB to a process, so it is imported only when a document is
made: the web processes that never print do not pay for it (as cases/slip.py's lab slip)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fpdf import FPDF


def document(title: str, *, landscape: bool = False, margin: float = 15) -> FPDF:
    """A letter-size page ready to write on, titled, made by CaseBridge, with no author named."""
    from fpdf import FPDF

    pdf = FPDF(orientation="landscape" if landscape else "portrait", unit="mm", format="letter")
    pdf.set_title(title)
    pdf.set_creator("CaseBridge")
    pdf.set_author("")
    pdf.set_margins(margin, margin, margin)
    pdf.add_page()
    return pdf


def latin(text: str) -> str:
    """The core fonts cover Latin-1 only: anything else prints as '?'."""
    return text.encode("latin-1", "replace").decode("latin-1")
