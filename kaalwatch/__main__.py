"""``python -m kaalwatch`` runs the command line."""

import sys

from kaalwatch.cli import main

sys.exit(main())
