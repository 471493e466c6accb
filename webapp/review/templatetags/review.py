"""``{{ comment.body|markdown }}``: the one filter that puts user-written markup in a page.

Templates never use ``|safe`` (tests/test_layout.py); a comment's HTML comes only from
``webapp.review.markdown.render`` (CommonMark with raw HTML off, then nh3's allowlist).
"""
from django import template
from django.utils.safestring import SafeString, mark_safe

from webapp.review.markdown import render

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    return mark_safe(render(text or ""))  # sanitised by render, the only place comment HTML is made
