"""`python -m connector.simulator`: run the simulator in the foreground (same options as `simulate`)."""

from connector.simulator.cli import main

raise SystemExit(main())
