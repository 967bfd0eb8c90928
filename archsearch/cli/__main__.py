"""``python -m archsearch.cli``."""

from . import main

main()
