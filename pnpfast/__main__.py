"""``python -m pnpfast COMMAND ...`` (and ``torchrun -m pnpfast restore ...``): the same as the
``pnpfast`` command."""

import sys

from pnpfast.cli import main

if __name__ == "__main__":
    sys.exit(main())
