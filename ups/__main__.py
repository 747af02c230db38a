from ups.cli import main

raise SystemExit(main())
