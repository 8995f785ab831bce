"""The query API's routes, one APIRouter module per resource: each builds a query, calls its
use case (application/) and maps the use case's errors to HTTP (errors.py)."""
