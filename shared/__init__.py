"""shopml's shared package: settings, errors, schemas, pure logic and adapters.

Pure logic modules import no cloud client; adapters under ``shared.adapters`` do, lazily.
"""

__version__ = "0.1.0"
