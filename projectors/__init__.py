"""Projectors: consume the event log and build read models, one consumer group each."""
