"""`python -m connector` is the same as the `genesys-connector` console script."""

from connector.cli import main

raise SystemExit(main())
