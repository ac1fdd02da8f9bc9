import sys

from kdmark.cli import main

sys.exit(main())
