"""The CLI's settings (RECALLSTACK_* and the home's secrets) and how a command fails."""

from __future__ import annotations

from rich.markup import escape

from cli.output import console, emit_json, error


class SettingsError(ValueError):
    """A RECALLSTACK_* variable that does not fit: said, with its name, and exit 2."""


def load_settings():
    from adapters import kafka_security
    from settings import Settings, default_home, ensure_secrets

    ensure_secrets(default_home())  # Settings reads them
    try:
        cfg = Settings.from_env()
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    kafka_security.use(cfg.kafka_security)
    return cfg


def fail(args, code: int, kind: str, message: str, details: list[str] | None = None) -> int:
    """Report a failure on stderr (and, with --json, as the one document on stdout), with the
    lines that explain it, if any."""
    for line in details or ():
        console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
    error(message)
    if getattr(args, "json", False):
        emit_json({"error": {"code": kind, "message": message, **({"details": details} if details else {})}})
    return code
