"""``python -m bots.discord`` is ``detectbot discord``."""

import sys

from detectbot.cli import main

sys.exit(main(["discord", *sys.argv[1:]]))
