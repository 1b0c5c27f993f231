"""`python -m harness.nemesis`: one run (see harness.nemesis)."""

from __future__ import annotations

import sys

from harness.nemesis.runner import main

if __name__ == "__main__":
    sys.exit(main())
