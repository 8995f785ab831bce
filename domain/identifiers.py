"""The shapes of identifiers every API accepts (pure constants, shared by both sides)."""

# user_id, agent_id, run_id, app_id: 1-128 of A-Z a-z 0-9 _ . : @ -, starting with a letter or digit.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
