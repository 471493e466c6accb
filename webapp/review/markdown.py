"""Comments as safe HTML: CommonMark with raw HTML off, then an allowlist sanitiser.

markdown-it-py with ``html=False`` already prints any tag the author typed as text; nh3
(ammonia's allowlist) is the second wall, so a parser bug or a plugin enabled later still
cannot emit a script, an event handler, a ``javascript:`` link or an image (images are left
out on purpose: an ``<img>`` to another host would make every reader's browser fetch it,
so ``![alt](url)`` stays a plain link).
"""
from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}}
URL_SCHEMES = {"http", "https", "mailto"}

_parser = (MarkdownIt("commonmark", {"html": False, "linkify": False})
           .enable(["table", "strikethrough"]).disable("image"))


def render(text: str) -> str:
    """The HTML of a comment's markdown, safe to put in a page as markup."""
    return nh3.clean(
        _parser.render(text), tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow", filter_style_properties={"text-align"},
    )
