"""``python -m bots.telegram`` is ``detectbot telegram``."""

import sys

from bots.telegram.main import main

sys.exit(main())
