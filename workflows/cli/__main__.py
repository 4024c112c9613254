"""``python -m sacmap.workflows.cli`` = ``sacmap``."""

import sys

from sacmap.workflows.cli.main import main

sys.exit(main())
