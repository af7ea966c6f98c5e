"""`python -m bench`: the `bench` command where its console script is not installed (a checkout
on PYTHONPATH, packages carried as wheels to a machine without a package index)."""

from bench.launcher import main

main()
