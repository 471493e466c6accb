"""API tokens: a user's keys for scripts, each named, revocable and stored only as a hash."""
from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models

#: Shown in lists so a user can tell their tokens apart; the rest of the key is never stored.
PREFIX_LENGTH = 8
KEY_BYTES = 32


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'sweep script on the cluster'")
    prefix = models.CharField(max_length=PREFIX_LENGTH)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}...)"

    @classmethod
    def issue(cls, user, name: str) -> tuple[ApiToken, str]:
        """A new token and its key; the key is shown once and only its hash is kept."""
        key = secrets.token_urlsafe(KEY_BYTES)
        return cls.objects.create(user=user, name=name, prefix=key[:PREFIX_LENGTH], key_hash=hash_key(key)), key
