"""``python -m chatdebug``: the ``chatdebug`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
