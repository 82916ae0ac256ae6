"""`python -m vaultstore_async` runs the `vaultstore` command line."""

import sys

from ._cli import main

sys.exit(main())
