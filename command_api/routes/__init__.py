"""The command API's routes, one APIRouter module per resource: each builds a command, runs
its handler (application/command_handlers.py) through running.py (Idempotency-Key, errors)."""
