"""The shapes of identifiers every API accepts (pure, shared by both sides)."""

import uuid

# user_id, agent_id, run_id, app_id: 1-128 of A-Z a-z 0-9 _ . : @ -, starting with a letter or digit.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def is_uuid(value: str) -> bool:
    """Whether `value` parses as a UUID (any form uuid.UUID accepts)."""
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False
