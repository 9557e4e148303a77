"""How long a Kafka consumer group takes to hand a SIGKILLed member's partitions to the
other member: the measurement behind the projector's choice of PostgreSQL leases over
consumer groups (docs/scaling.md, "Projector partitions").

``python -m bench.takeover_kafka_group [--rounds N] [--session-ms MS ...]``

For each session timeout: a fresh topic of 8 partitions on the broker at
CARETEAM_KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092); two consumer processes join
one group (aiokafka, heartbeat a third of the session timeout) and print their
assignment at every rebalance. Once each holds 4 partitions, one is killed with SIGKILL;
the time from the kill until the survivor prints all 8 is the takeover. The topic is
deleted afterwards. The projector's PostgreSQL leases are measured by
tests/integration/test_projector_failover.py (it prints its takeover times).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from uuid import uuid4

from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]

PARTITIONS = 8

_MEMBER = """
import asyncio, sys
from aiokafka import AIOKafkaConsumer
from aiokafka.abc import ConsumerRebalanceListener

class Tell(ConsumerRebalanceListener):
    async def on_partitions_revoked(self, revoked):
        pass
    async def on_partitions_assigned(self, assigned):
        print(len(assigned), flush=True)

async def main():
    bootstrap, topic, group, session = sys.argv[1:5]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        session_timeout_ms=int(session), heartbeat_interval_ms=int(session) // 3,
    )
    consumer.subscribe([topic], listener=Tell())
    await consumer.start()
    while True:
        await consumer.getmany(timeout_ms=100)

asyncio.run(main())
"""


class _Member:
    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MEMBER, *args], stdout=subprocess.PIPE, text=True
        )
        self.assigned = 0
        self._task = asyncio.create_task(asyncio.to_thread(self._read))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.assigned = int(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


async def _until(check: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the group did not settle")
        await asyncio.sleep(0.01)


async def measure(bootstrap: str, session_ms: int) -> float:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    topic = f"bench.takeover.{uuid4().hex[:8]}"
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    args = [bootstrap, topic, f"bench-{uuid4().hex[:8]}", str(session_ms)]
    members = [_Member(args), _Member(args)]
    try:
        await _until(lambda: sorted(m.assigned for m in members) == [4, 4], 120)
        victim, survivor = members
        victim.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await _until(lambda: survivor.assigned == PARTITIONS, 300)
        return time.monotonic() - killed
    finally:
        for member in members:
            member.stop()
        await admin.delete_topics([topic])
        await admin.close()


async def _main(args: argparse.Namespace) -> None:
    bootstrap = os.environ.get("CARETEAM_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    for session_ms in args.session_ms:
        times = [await measure(bootstrap, session_ms) for _ in range(args.rounds)]
        shown = ", ".join(f"{t:.2f}" for t in times)
        print(f"session.timeout.ms={session_ms}: takeover after SIGKILL {shown} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--session-ms", type=int, nargs="+", default=[6000, 10000, 45000])
    asyncio.run(_main(parser.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
