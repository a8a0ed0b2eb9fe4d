"""``python -m bots.discord`` is ``detectbot discord``."""

import sys

from bots.discord.main import main

sys.exit(main())
