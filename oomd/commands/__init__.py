"""pyoomd's commands: ``pyoomd VERB [ARG]...``. oomd's own flags stay in ``oomd.cli``.

``oomd.cli.main`` treats the first argument as a verb when it does not start with ``-``.
A verb is one module, ``oomd/commands/<verb with '-' replaced by '_'>.py``, that exposes

* ``HELP: str``, one line, listed by ``pyoomd --help``;
* ``main(argv: list[str]) -> int``: ``argv`` without the verb, parsed with argparse inside
  (so ``pyoomd VERB --help`` works); the return value is the exit status (``SystemExit``,
  as argparse raises it, counts the same);

and one line in ``VERBS`` below. A verb's module is imported only when that verb runs or
``pyoomd --help`` lists it, so commands cost the daemon nothing. An unknown verb exits 2 with
the list of the known ones.
"""

VERBS: dict[str, str] = {
    "show-config": "oomd.commands.show_config",
    "show-unit": "oomd.commands.show_unit",
    "lint": "oomd.commands.lint",
    "explain": "oomd.commands.explain",
    "status": "oomd.commands.status",
    "replay": "oomd.commands.replay",
    "record-info": "oomd.commands.record_info",
    "export": "oomd.commands.export",
}
