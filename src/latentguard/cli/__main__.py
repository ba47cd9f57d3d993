"""``python -m latentguard.cli`` is the ``latentguard`` command."""

import sys

from latentguard.cli.app import main

sys.exit(main())
