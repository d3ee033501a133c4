"""``python -m tjf_cli`` and the ``toolforge-jobs`` console script."""

from __future__ import annotations

import sys

from tjf_cli.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
