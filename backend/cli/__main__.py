"""``python -m backend.cli``: the same as the ``dreamcad-backend`` command."""

from backend.cli import main

raise SystemExit(main())
