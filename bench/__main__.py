"""``python -m bench [options]``: the same as ``python -m bench [options]``."""

from bench.cli import main

raise SystemExit(main())
