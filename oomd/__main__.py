from oomd.cli import main

raise SystemExit(main())
