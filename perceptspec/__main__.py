"""`python -m perceptspec`: the command line (see `perceptspec.cli`)."""

from perceptspec.cli import main

raise SystemExit(main())
