import sys

from flowcron.cli import main

sys.exit(main())
