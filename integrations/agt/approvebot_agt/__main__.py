"""python3 -m approvebot_agt: check an approvebot answer by hand (see verifier.main)."""

import sys

from .verifier import main

sys.exit(main())
