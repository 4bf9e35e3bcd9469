"""`python -m smsgate.config [--update FILE]`: the settings table (render.py)."""

import sys

from .render import main

sys.exit(main())
