"""Losing the race to create an Optuna schema, made deterministic for the storage tests."""

from __future__ import annotations

import pytest


def lose_the_schema_race_once(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make Optuna's first schema creation run as if a rival process created every table
    between Optuna's existence check and its CREATE TABLE: the first call skips the check.
    Returns the list of calls, "raced" or "checked"."""
    from optuna.storages._rdb import models

    real_create_all = models.BaseModel.metadata.create_all
    calls: list[str] = []

    def create_all(bind, **kwargs):  # type: ignore[no-untyped-def]
        calls.append("checked" if calls else "raced")
        return real_create_all(bind, **{**kwargs, "checkfirst": len(calls) > 1})

    monkeypatch.setattr(models.BaseModel.metadata, "create_all", create_all)
    return calls
