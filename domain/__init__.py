"""Pure domain logic: event and command types, policies. Imports no I/O."""
