"""``python -m worker`` is ``detectbot worker``."""

import sys

from worker.main import main

sys.exit(main())
