"""`python -m warmgate.proxy.cli`: the `warmgate` command without its console script."""

from warmgate.proxy.cli import main

raise SystemExit(main())
