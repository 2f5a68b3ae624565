"""The stages of the `im2wav` command, one module per subcommand.

Each module has `build_parser(prog)` and `main(argv) -> int`; `main` raises `im2wav.errors.UserError`
(or `ValueError`/`TypeError`/`FileNotFoundError`) on user mistakes and leaves reporting them to
`im2wav.cli`, which `training_scripts/*.py` also go through.
"""
