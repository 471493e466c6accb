"""``python -m engine``: see engine/cli.py and docs/cli.md."""
import sys

from engine.cli import main

sys.exit(main(own_process=True))
