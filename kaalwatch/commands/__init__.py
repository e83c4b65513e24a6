"""The subcommands of ``kaalwatch``, one module per area; each is a thin layer over the library."""
