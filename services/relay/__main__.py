"""``python -m services.relay``: run the Kafka relay (see services/relay/cli.py)."""

from services.relay.cli import main

raise SystemExit(main())
