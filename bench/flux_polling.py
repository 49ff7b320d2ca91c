"""FLUX-style jobs through the bfl adapter against the fake BFL API on 127.0.0.1: each task answers Ready
a set time after it is submitted; at most `concurrency` generations at once (the entry's
max_concurrency). Reports the wall time against the ideal (batches of `concurrency` x the task's time)
and how many polls each job cost per second of its life.

    .venv/bin/python -m bench.flux_polling [--jobs 200] [--concurrency 24] [--seconds 3]
"""

import argparse
import asyncio
import math
import time

from pixyproxy.adapters.providers.bfl import BflImageGenerator
from pixyproxy.domain.models import GenerationRequest
from tests.support.fake_bfl import KEY, FakeBfl


async def run(fake: FakeBfl, jobs: int, concurrency: int) -> float:
    generator = BflImageGenerator(
        model="flux-2-pro", api_key=KEY, base_url=fake.base_url, timeout_seconds=120
    )
    limit = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with limit:
            await generator.generate(GenerationRequest(prompt=f"job {index}", size="256x256"))

    started = time.perf_counter()
    try:
        await asyncio.gather(*(one(i) for i in range(jobs)))
    finally:
        await generator.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with FakeBfl(ready_after_seconds=args.seconds, concurrency=args.concurrency) as fake:
        wall = asyncio.run(run(fake, args.jobs, args.concurrency))
        polls = sum(len(task.poll_times) for task in fake.tasks.values())
        lives = sum(task.poll_times[-1] - task.submitted_at for task in fake.tasks.values())
    ideal = math.ceil(args.jobs / args.concurrency) * args.seconds
    print(f"jobs {args.jobs}, concurrency {args.concurrency}, Ready after {args.seconds:g} s")
    print(f"wall {wall:.1f} s, ideal {ideal:.1f} s, ratio {wall / ideal:.2f}")
    print(f"polls {polls}: {polls / args.jobs:.1f} per job, {polls / lives:.2f} per job-second")


if __name__ == "__main__":
    main()
