"""shopml's developer and operator kit: the ``shopml`` command, the store simulator, the order
importer, the local stack and the demo.

Nothing deployed imports this package: function bundles and the trainer image carry only
``shared/``. The real data the tools and benchmarks use lives in ``devkit/data/`` (see its README).
"""

from pathlib import Path

DEVKIT_ROOT = Path(__file__).resolve().parent
DATA_DIR = DEVKIT_ROOT / "data"
RETAIL_SAMPLE_CSV = DATA_DIR / "online_retail_sample.csv"
RETAIL_9_MONTHS_CSV = DATA_DIR / "online_retail_2010-12_2011-08.csv.gz"
