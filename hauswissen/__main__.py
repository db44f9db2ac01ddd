from hauswissen.cli import main

raise SystemExit(main())
