"""``python -m nano_export`` runs the command line."""

from nano_export.cli import main

main()
