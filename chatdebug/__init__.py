"""chatdebug: record every LLM call of a chat application as debug runs made of steps."""

from ._version import __version__

__all__ = ["__version__"]
