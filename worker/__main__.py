"""``python -m worker`` is ``detectbot worker``."""

import sys

from detectbot.cli import main

sys.exit(main(["worker", *sys.argv[1:]]))
