"""``python -m steerlab``: the ``steerlab`` command."""

from steerlab.cli.app import main

main()
