"""`python -m taskrun_client.cli`, the same as `taskrun`."""

from taskrun_client.cli import main

main()
