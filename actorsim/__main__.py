"""`python -m actorsim` is the `actorsim` command."""

from actorsim.cli import main

main()
