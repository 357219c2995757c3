"""``python -m tests.support.emulator``: see :func:`tests.support.emulator.process.main`."""

import sys

from tests.support.emulator.process import main

sys.exit(main())
