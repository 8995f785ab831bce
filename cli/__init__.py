"""The `recallstack` command line."""
