"""``python -m gpner.cli``: the ``gpner`` command."""

import sys

from gpner.cli import main

sys.exit(main())
