"""The use cases: one small class per command, each taking only the ports and policies it uses.

Cross-cutting policy is written once, in collaborators every use case shares: validation.py (the one
translation of a validation error into the 422), idempotency.py (replays and single flight, for images
and jobs alike), metering.py (budgets and usage around every provider call), storing.py (bytes first,
then the row, and what to do when a write's outcome is unknown). Tenancy is domain/tenancy.py's.
The container builds each one; entrypoints call them.
"""
