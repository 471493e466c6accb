"""Built-in datasets, each written by a generator to the upload layout (images/, masks/,
classes.json), so they travel the same path as a user's upload."""
from engine.registry import Registry

GENERATORS = Registry("built-in dataset")
register_generator = GENERATORS.register

from engine.data.builtin import demo  # noqa: E402,F401
