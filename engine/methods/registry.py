from __future__ import annotations

from typing import TYPE_CHECKING

from engine.registry import Registry

if TYPE_CHECKING:
    from engine.methods.base import Method

# A method registers its class: the trainer reads class attributes (``uses_unlabeled``) before building one.
METHODS: Registry[type[Method]] = Registry("method")
register_method = METHODS.register
