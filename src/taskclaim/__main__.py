import sys

from taskclaim.cli import main

sys.exit(main())
