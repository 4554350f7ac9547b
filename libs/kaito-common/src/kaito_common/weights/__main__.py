"""`python -m kaito_common.weights download|build-image` (see cli.py)."""

import sys

from kaito_common.weights.cli import main

sys.exit(main())
