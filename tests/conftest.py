import os
import sys
from pathlib import Path

# Test helpers (small scenarios) import as plain modules.
sys.path.insert(0, str(Path(__file__).parent))

# The tests compute every baseline: a cache kept by an earlier test (or by the user's runs)
# would let a test pass on stored numbers. Tests of the cache point it at a folder of their own.
os.environ["VMEMSIM_BASELINE_CACHE"] = "off"
