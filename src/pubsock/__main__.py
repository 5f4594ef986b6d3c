"""``python -m pubsock module:attr [--host --port --workers N --broker URL ...]``; see ``pubsock.cli``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
