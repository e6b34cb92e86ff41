"""`lazy`: a per-instance cached attribute, like functools.cached_property without its lock
(Python 3.11's cached_property takes an RLock on every first access, a measurable cost when a
document's stats object makes ~30 of them and lives for one call)."""

from __future__ import annotations


class lazy:  # noqa: N801 - used as a decorator, like property
    def __init__(self, func):
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = self.func(obj)
        obj.__dict__[self.name] = value  # later lookups find the instance attribute first
        return value
