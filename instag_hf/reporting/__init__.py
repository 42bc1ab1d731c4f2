"""Reporting: Markdown/HTML documents and matplotlib plots of analysis and selection results."""

from .report import Document, analysis_document, render_html, render_markdown, selection_document, write_report

__all__ = ["write_report", "render_markdown", "render_html", "Document", "analysis_document", "selection_document"]
