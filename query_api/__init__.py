"""The read side: search, get, list, history, context. Never imports command_api."""
