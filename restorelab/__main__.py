import sys

from restorelab.cli import main

sys.exit(main())
