"""Runs (or resumes) one pipeline offline, each model call taking `delay` seconds, and prints how it ended.

    python tests/race_worker.py DB RUN_ID DELAY [redis URL]

Used by tests/test_leases.py: several of these start at once on the same run, as two `mas run --run-id X`,
two workers or two notebooks would.
"""

import sys

from mas.client import make_client
from mas.errors import RunBusy
from mas.memory import SQLiteMemory
from mas.offline import Latency, OfflineTransport
from mas.orchestrator import Orchestrator


def main(db: str, run_id: str, delay: float, redis_url: str | None = None) -> None:
    if redis_url:
        from mas.scaling import RedisMemory
        memory = RedisMemory(redis_url, prefix=db)
    else:
        memory = SQLiteMemory(db)
    transport = OfflineTransport(latency=Latency(base=delay))
    orchestrator = Orchestrator(memory, client=make_client(transport=transport, max_retries=0), progress=None)
    try:
        result = orchestrator.run("How vector databases enable semantic search", run_id=run_id)
    except RunBusy as busy:
        print(f"busy {busy.holder}", flush=True)
        return
    print(f"{result.status} calls={transport.model.calls}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), *sys.argv[4:])
