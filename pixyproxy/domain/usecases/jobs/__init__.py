"""Generation jobs: submit (the row is written before the answer), read and list, cancel, stream events,
and run one job's images (the worker in domain/jobs_worker.py calls RunJob).

Each image of a job is made under the Idempotency-Key `job:{id}:{index}`, so a job taken over after its
process died reuses what was already stored: never more than n images.
"""
