"""Import a store's order history from a file: UCI Online Retail (both layouts) or Shopify
admin's order export, through the same validation and load as webhooks (``source=import``).

    from devkit.importer import import_orders
    report = import_orders("orders.csv.gz", warehouse=warehouse)
    print(report.summary())

See ``devkit/importer/README.md`` for the mapping and its decisions.
"""

from devkit.importer.report import ImportReport
from devkit.importer.run import DEFAULT_BATCH_LINES, import_orders
from devkit.importer.source import UnreadableFile

__all__ = ["DEFAULT_BATCH_LINES", "ImportReport", "UnreadableFile", "import_orders"]
