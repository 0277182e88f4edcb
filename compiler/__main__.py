"""`python -m compiler build ...` is `kflowc build ...`."""

from compiler.cli import main

main()
