"""``python -m bots.telegram`` is ``detectbot telegram``."""

import sys

from detectbot.cli import main

sys.exit(main(["telegram", *sys.argv[1:]]))
