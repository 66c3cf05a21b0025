"""`python -m connector.testbed.simulator`: the simulator in the foreground (options as for `simulate`)."""

from connector.testbed.simulator.cli import main

raise SystemExit(main())
