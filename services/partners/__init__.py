"""Partner feeds: consented, minimum-necessary events for partner organisations.

- ``rules``: who may receive what (consent in log order, 42 CFR Part 2), versioned
- ``contract``: the public event types, their projections and JSON Schemas (``schemas/``)
- ``registry``: partners, their keys, history, checkpoints and dead letters
- ``feed``: choosing and projecting one page of the log for one partner
- ``delivery`` and ``signing``: Kafka and signed webhooks with retries
- ``worker``: one worker per partner, supervised by ``PartnerFeeds``
- ``subscription``: the GraphQL subscription channel
- ``disclosures``: the accounting of disclosures (45 CFR 164.528)

Nothing here runs at import time; ``PartnerFeeds(...).run()`` runs the feeds.
"""

from services.partners.delivery import PartnerOptions
from services.partners.worker import PartnerFeeds, PartnerWorker

__all__ = ["PartnerFeeds", "PartnerOptions", "PartnerWorker"]
