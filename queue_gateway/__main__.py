"""``python -m queue_gateway`` is ``detectbot gateway``."""

import sys

from queue_gateway.main import main

sys.exit(main())
