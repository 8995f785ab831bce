"""Workers that read the log and the projections and append lifecycle events: extraction, consolidation, forgetting."""
