"""Lifecycle thresholds, a default and overrides per app_id, from a YAML file.

RECALLSTACK_LIFECYCLE_CONFIG names the file (default: $RECALLSTACK_HOME/lifecycle.yaml when
it exists, else the defaults below). Every key is optional; an unknown key is an error
that names it. Example:

    default:
      forget_below: 0.05          # current importance below this: MemoryForgotten (hidden, restorable)
      delete_below: 0.01          # below this and older than delete_min_age_days: MemoryDeleted
      delete_min_age_days: 90
      half_life_days: 30          # importance halves every half_life_days without access
      access_boost: 0.1           # weight of log2(1 + accesses), itself decaying from the last access
      consolidate_min_age_days: 7 # only memories older than this are consolidated ...
      token_budget: 50000         # ... unless a user's active memories in one scope exceed this many tokens
      similarity: 0.85            # cosine at which memories belong to one cluster
      min_cluster: 2
      max_cluster: 8
      summary_max_chars: 1000
      max_pass_memories: 2000     # eligible memories clustered per user and scope in one pass (oldest first)
    apps:
      ide: {half_life_days: 90}   # coding agents keep memories longer
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml

from domain.consolidation import ConsolidationPolicy
from domain.importance import ForgettingPolicy


@dataclass(frozen=True)
class LifecyclePolicy:
    forget_below: float = 0.05
    delete_below: float = 0.01
    delete_min_age_days: float = 90.0
    half_life_days: float = 30.0
    access_boost: float = 0.1
    consolidate_min_age_days: float = 7.0
    token_budget: int = 50_000
    similarity: float = 0.85
    min_cluster: int = 2
    max_cluster: int = 8
    summary_max_chars: int = 1_000
    max_pass_memories: int = 2_000  # per user and scope in one pass (clustering is quadratic)

    def __post_init__(self):
        # Build both once: their own checks name a bad threshold at load time, not mid-run.
        self.forgetting, self.consolidation
        if self.half_life_days <= 0:
            raise ValueError(f"half_life_days must be positive, got {self.half_life_days}")
        if self.max_pass_memories < 2:
            raise ValueError(f"max_pass_memories must be at least 2, got {self.max_pass_memories}")

    @property
    def forgetting(self) -> ForgettingPolicy:
        return ForgettingPolicy(self.forget_below, self.delete_below, self.delete_min_age_days)

    @property
    def consolidation(self) -> ConsolidationPolicy:
        return ConsolidationPolicy(min_age_days=self.consolidate_min_age_days, similarity_at=self.similarity,
                                   min_cluster=self.min_cluster, max_cluster=self.max_cluster,
                                   token_budget=self.token_budget, summary_max_chars=self.summary_max_chars)


_TYPES = {f.name: f.type for f in fields(LifecyclePolicy)}
_KEYS = set(_TYPES)


def _policy(base: LifecyclePolicy, values: dict | None, where: str) -> LifecyclePolicy:
    values = values or {}
    if not isinstance(values, dict):
        raise ValueError(f"{where} must be a mapping of thresholds, got {type(values).__name__}")
    unknown = sorted(set(values) - _KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
    converted = {}
    for key, value in values.items():
        kind = {"float": float, "int": int}[_TYPES[key]]
        try:
            # YAML 1.1 reads 1e-05 as a string; bool is not a number here.
            if isinstance(value, bool):
                raise ValueError
            converted[key] = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {key} must be a number ({kind.__name__}), got {value!r}") from None
    try:
        return replace(base, **converted)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc


@dataclass(frozen=True)
class LifecycleConfig:
    default: LifecyclePolicy = LifecyclePolicy()
    apps: dict[str, LifecyclePolicy] = field(default_factory=dict)
    source: str = "built-in defaults"

    def for_app(self, app_id: str | None) -> LifecyclePolicy:
        return self.apps.get(app_id or "", self.default)

    @classmethod
    def from_mapping(cls, raw: dict | None, source: str = "mapping") -> "LifecycleConfig":
        raw = raw or {}
        unknown = sorted(set(raw) - {"default", "apps"})
        if unknown:
            raise ValueError(f"{source}: unknown section(s) {', '.join(unknown)}; expected default and apps")
        default = _policy(LifecyclePolicy(), raw.get("default"), f"{source}: default")
        apps = {str(app): _policy(default, values, f"{source}: apps.{app}") for app, values in
                (raw.get("apps") or {}).items()}
        return cls(default, apps, source)

    @classmethod
    def load(cls, home: Path, named: Path | None = None) -> "LifecycleConfig":
        """The file `named` (Settings.lifecycle_config: it must exist), else <home>/lifecycle.yaml
        when it exists, else the defaults."""
        path = named or home / "lifecycle.yaml"
        if not path.exists():
            if named:
                raise ValueError(f"RECALLSTACK_LIFECYCLE_CONFIG names {path}, which does not exist")
            return cls()
        return cls.from_mapping(yaml.safe_load(path.read_text()), str(path))
