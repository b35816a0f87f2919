import sys

from knray.cli.main import main

sys.exit(main())
