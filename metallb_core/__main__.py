"""``python -m metallb_core``: the ``metallb-core`` command line (see :mod:`metallb_core._cli`)."""

from metallb_core._cli import main

raise SystemExit(main())
