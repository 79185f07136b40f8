"""`python -m pcapmtu` runs the command line."""

from .cli import main

main()
