"""``python -m queue_gateway`` is ``detectbot gateway``."""

import sys

from detectbot.cli import main

sys.exit(main(["gateway", *sys.argv[1:]]))
