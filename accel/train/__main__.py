"""``python -m accel.train NAME [--seed S] [-o DIR]``."""

import sys

from accel.train.api import main

sys.exit(main())
