"""Getting messages to a partner: its Kafka topic, or its webhook with retries.

Webhooks: one signed POST per attempt (signing.py). A non-2xx answer or a network error
is retried after an exponential backoff (``initial * 2**n``, capped, with jitter), by
default ten attempts over about three hours; only that patient's later messages wait
behind it, in the worker's per-patient queues (worker.py). Before every retry the
message is projected and its consent judged again, so a revocation recorded meanwhile
stops it. After the last attempt the message is dead-lettered; an administrator can ask
for it again (``redeliverPartnerDeadLetters``). Redirects are not followed: a partner's
endpoint is the URL it registered.

Kafka: the page's records are sent to the partner's topic by an idempotent producer
and awaited until acknowledged; any failure replaces the producer and sends the page
again after a backoff (the internal relay's recovery path, services/relay/relay.py).
Kafka is careteam's own cluster, so there is no dead letter: the feed waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import Enum
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

from services.kafka import KafkaTopicError
from services.partners.messages import STRUCTURED_CONTENT_TYPE, PartnerMessage
from services.partners.registry import PartnerKeys
from services.partners.signing import signed_headers
from services.settings import SettingsError

log = logging.getLogger("careteam.partners")

_PUBLISH_ERRORS: tuple[type[BaseException], ...] = (KafkaError, TimeoutError, OSError)
# A partner topic that could not be created is retried like a broker that did not answer.
_PUBLISH_OR_TOPIC_ERRORS: tuple[type[BaseException], ...] = (*_PUBLISH_ERRORS, KafkaTopicError)
USER_AGENT = "careteam-partner-feed/1"
ATTEMPT_HEADER = "X-Careteam-Delivery-Attempt"


@dataclass(frozen=True)
class PartnerOptions:
    """Tuning of partner feeds; ``from_env`` reads ``CARETEAM_PARTNERS_<FIELD>``."""

    page_size: int = 200
    poll_seconds: float = 0.5
    # How often the supervisor looks for registered, changed or deactivated partners.
    refresh_seconds: float = 2.0
    lease_poll_seconds: float = 1.0
    # Webhooks: attempts per message and the backoff between them (30 s doubling to a
    # one-hour cap: ten attempts span about three hours).
    webhook_attempts: int = 10
    webhook_initial_delay_seconds: float = 30.0
    webhook_max_delay_seconds: float = 3_600.0
    webhook_timeout_seconds: float = 10.0
    # After a secret rotation the old secret keeps signing beside the new one this long
    # (every request carries both signatures), so a partner can switch without a gap.
    webhook_secret_overlap_seconds: float = 86_400.0
    # Kafka.
    publish_timeout_seconds: float = 30.0
    backoff_initial_seconds: float = 0.2
    backoff_max_seconds: float = 10.0
    close_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.page_size < 1 or self.webhook_attempts < 1:
            raise SettingsError("partner page_size and webhook_attempts must be at least 1")
        if min(self.webhook_initial_delay_seconds, self.backoff_initial_seconds) <= 0:
            raise SettingsError("partner backoff delays must be positive")
        if self.webhook_secret_overlap_seconds < 0:
            raise SettingsError("CARETEAM_PARTNERS_WEBHOOK_SECRET_OVERLAP_SECONDS must be >= 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PartnerOptions:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"CARETEAM_PARTNERS_{f.name.upper()}")
            if raw in (None, ""):
                continue
            kind = int if f.type in ("int", int) else float
            try:
                values[f.name] = kind(raw)
            except ValueError:
                name = f"CARETEAM_PARTNERS_{f.name.upper()}"
                raise SettingsError(f"{name} must be a {kind.__name__}") from None
        return cls(**values)

    def webhook_delay(self, failed_attempts: int) -> float:
        """The wait after ``failed_attempts`` failures (1, 2, ...): doubling, capped, jittered."""
        step = self.webhook_initial_delay_seconds * 2.0 ** (failed_attempts - 1)
        return min(self.webhook_max_delay_seconds, step) * random.uniform(0.75, 1.0)


class Outcome(Enum):
    DELIVERED = "delivered"
    FAILED = "failed"  # one webhook attempt failed; it is tried again later
    DEAD = "dead"
    WITHHELD = "withheld"  # consent revoked while retrying
    STOPPED = "stopped"  # the worker is stopping; the message stays pending


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    attempts: int
    last_error: str = ""
    # Whether the body left careteam (it may have been received even if the answer was an
    # error): such an attempt is a disclosure, whatever its outcome.
    sent: bool = True


async def sleep_or_stop(seconds: float, stop: asyncio.Event) -> bool:
    """Waits ``seconds``; True if ``stop`` was set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


class WebhookSink:
    """Signed POSTs to one partner endpoint, retried with exponential backoff."""

    def __init__(
        self,
        url: str,
        keys: PartnerKeys,
        options: PartnerOptions,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], datetime],
        unix_time: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._keys = keys
        self._options = options
        self._client = client
        self._clock = clock
        self._unix_time = unix_time

    async def attempt(self, message: PartnerMessage, attempt: int) -> Result:
        """One signed POST of ``message``, announced as attempt number ``attempt``.

        DELIVERED on a 2xx answer; FAILED otherwise, with ``sent`` False only when the
        request never reached the partner (no connection), so nothing was disclosed.
        """
        body = message.webhook_body()
        timestamp = int(self._unix_time())
        headers = {
            "Content-Type": STRUCTURED_CONTENT_TYPE,
            "User-Agent": USER_AGENT,
            **signed_headers(
                self._keys.signing_secrets(self._clock()), message.id, body, timestamp
            ),
            ATTEMPT_HEADER: str(attempt),
        }
        if traceparent := message.attributes().get("traceparent"):
            # W3C trace context over HTTP too, so the partner's HTTP tracing joins it.
            headers["traceparent"] = traceparent
        try:
            response = await self._client.post(
                self._url,
                content=body,
                headers=headers,
                timeout=self._options.webhook_timeout_seconds,
                follow_redirects=False,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return Result(Outcome.FAILED, attempt, type(exc).__name__, sent=False)
        except httpx.HTTPError as exc:
            return Result(Outcome.FAILED, attempt, type(exc).__name__)
        if 200 <= response.status_code < 300:
            return Result(Outcome.DELIVERED, attempt)
        return Result(Outcome.FAILED, attempt, f"HTTP_{response.status_code}")


class KafkaSink:
    """Sends pages to one partner topic until the broker acknowledged every record."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        options: PartnerOptions,
        *,
        client_id: str,
        producer_factory: Callable[[], Any] | None = None,
        client_options: dict[str, Any] | None = None,
        make_topic: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self._bootstrap = bootstrap_servers
        # Creates the topic when missing, before the first record (services/kafka.py).
        self._make_topic = make_topic
        # TLS and SASL (services/kafka.py client_options), beside the bootstrap servers.
        self._client_options = {
            k: v for k, v in (client_options or {}).items() if k != "bootstrap_servers"
        }
        self._topic = topic
        self._options = options
        self._client_id = client_id
        self._factory = producer_factory or self._new_producer
        self._producer: Any = None
        self._step = options.backoff_initial_seconds
        self.failures = 0

    def _new_producer(self) -> Any:
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            **self._client_options,
            client_id=self._client_id,
            enable_idempotence=True,
            acks="all",
            request_timeout_ms=10_000,
        )

    async def publish(self, messages: Sequence[PartnerMessage], stop: asyncio.Event) -> bool:
        """True once every record is acknowledged; False if stopped first."""
        records = [m.kafka_record() for m in messages]
        while not stop.is_set():
            futures: list[asyncio.Future[Any]] = []
            try:
                async with asyncio.timeout(self._options.publish_timeout_seconds):
                    if self._make_topic is not None:
                        await self._make_topic(self._topic)
                        self._make_topic = None
                    if self._producer is None:
                        self._producer = self._factory()
                        await self._producer.start()
                    for r in records:
                        futures.append(
                            await self._producer.send(
                                self._topic, value=r.value, key=r.key, headers=r.headers
                            )
                        )
                    results = await asyncio.gather(*futures, return_exceptions=True)
                for result in results:
                    if isinstance(result, BaseException):
                        raise result
            except _PUBLISH_OR_TOPIC_ERRORS as exc:
                for future in futures:
                    if future.done() and not future.cancelled():
                        future.exception()
                    else:
                        future.cancel()
                self.failures += 1
                delay = self._step * random.uniform(0.5, 1.0)
                self._step = min(self._options.backoff_max_seconds, self._step * 2)
                log.warning(
                    "partner page not acknowledged; replacing the producer "
                    "topic=%s error=%s retry_in=%.2f",
                    self._topic,
                    type(exc).__name__,
                    delay,
                )
                await self.close(abandon=True)
                await sleep_or_stop(delay, stop)
                continue
            self._step = self._options.backoff_initial_seconds
            return True
        return False

    async def close(self, *, abandon: bool = False) -> None:
        """Stops the producer; ``abandon`` drops what it holds (the checkpoint did not move
        past it, so the next producer sends it again). See Relay._abandon for why
        stopping an idempotent producer that cannot deliver needs this."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        if not abandon:
            try:
                async with asyncio.timeout(self._options.close_timeout_seconds):
                    await producer.stop()
                return
            except Exception as exc:  # a failed close must not stop the feed
                log.warning("partner producer did not stop cleanly error=%s", type(exc).__name__)
        producer._closed = True
        sender = getattr(getattr(producer, "_sender", None), "sender_task", None)
        try:
            if sender is not None and not sender.done():
                sender.cancel()
                async with asyncio.timeout(self._options.close_timeout_seconds):
                    await asyncio.gather(sender, return_exceptions=True)
        except TimeoutError:
            log.warning("partner producer sender did not stop in time topic=%s", self._topic)
        finally:
            try:
                async with asyncio.timeout(self._options.close_timeout_seconds):
                    await producer.client.close()
            except Exception as exc:  # a discarded producer's cleanup must not stop the feed
                log.warning("partner producer did not close error=%s", type(exc).__name__)
