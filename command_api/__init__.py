"""The write side: validate, embed, append events. Never imports query_api."""
