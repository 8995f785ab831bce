"""The key the benchmarks send to the REST API (as the CLI's export and import do)."""

from __future__ import annotations


def api_headers() -> dict[str, str]:
    """The Authorization header benches send: $RECALLSTACK_API_KEY, else the local stack's
    admin key ($RECALLSTACK_HOME/admin.key, made by `recallstack up`; admin keys are not
    rate limited). None in the no-auth mode."""
    from cli.keys import cli_api_key
    from settings import Settings

    key = cli_api_key(Settings.from_env())
    return {"Authorization": f"Bearer {key}"} if key else {}
