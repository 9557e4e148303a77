"""``python -m services.bench [options]``: the same as ``careteam bench [options]``."""

from services.bench.cli import main

raise SystemExit(main())
