"""`python -m hil.vcan_vm [options] -- CMD...`: the same as `hil vcan-vm`."""

import sys

from hil.vcan_vm import main

if __name__ == "__main__":
    sys.exit(main())
