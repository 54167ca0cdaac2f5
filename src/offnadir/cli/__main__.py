import sys

from offnadir.cli import main

sys.exit(main())
