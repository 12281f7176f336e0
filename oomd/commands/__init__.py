"""The ``pyoomd VERB`` subcommands: verb name -> module, imported only when the verb runs."""

VERBS = {
    "show-config": "oomd.commands.show_config",
    "show-unit": "oomd.commands.show_unit",
}
