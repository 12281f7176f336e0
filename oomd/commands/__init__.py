VERBS = {"lint": "oomd.commands.lint"}
