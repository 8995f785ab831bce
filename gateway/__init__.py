"""The gateway: one base URL that routes writes to the command API and reads to the query API."""
