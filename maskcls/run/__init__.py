"""A run on disk: its folder (layout, claim, resume) and the files written at its end."""

import time

# When the entry point was imported, before Hydra wrote anything for this run: a refused run
# removes only what is newer (``folder.discard_unstarted``).
STARTED = time.time() - 1.0
