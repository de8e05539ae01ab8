"""The GraphQL documents backfill and reconcile send (Admin API 2025-10 field names).

Money bags select only ``shopMoney`` (the shop's currency, what the REST fields carry): it
halves their cost. Page sizes keep every paginated query under Shopify's 1,000-point single
query limit (the stand-in computes the same costs; the test suite checks each document's
requested cost there). Bulk queries need no page sizes.
"""

from __future__ import annotations

MONEY = "{ shopMoney { amount currencyCode } }"

LINE_ITEM = f"""id name title variantTitle sku vendor quantity currentQuantity taxable requiresShipping
  originalUnitPriceSet {MONEY} totalDiscountSet {MONEY}
  discountAllocations {{ allocatedAmountSet {MONEY} }}
  taxLines {{ title rate priceSet {MONEY} }}
  variant {{ id }} product {{ id }}"""

ADDRESS = "{ address1 city province provinceCode country countryCodeV2 zip firstName lastName phone }"

ORDER = f"""id name createdAt updatedAt processedAt cancelledAt cancelReason closedAt email phone
  currencyCode presentmentCurrencyCode displayFinancialStatus displayFulfillmentStatus
  taxesIncluded test sourceName tags discountCodes
  totalPriceSet {MONEY} subtotalPriceSet {MONEY} subtotalLineItemsPriceSet {MONEY}
  totalTaxSet {MONEY} totalDiscountsSet {MONEY} totalShippingPriceSet {MONEY}
  totalOutstandingSet {MONEY} currentTotalPriceSet {MONEY} currentSubtotalPriceSet {MONEY}
  currentTotalTaxSet {MONEY} currentTotalDiscountsSet {MONEY}
  customer {{ id email phone firstName lastName }}
  shippingAddress {ADDRESS} billingAddress {ADDRESS}
  refunds {{ id createdAt updatedAt }}"""

# A refund line needs of its line item only what refund_line_items keeps (3 points, not 13).
REFUND_LINE_ITEM = "id sku quantity variant { id } product { id }"

REFUND = f"""id createdAt updatedAt note
  refundLineItems(first: 10) {{ nodes {{ id quantity restockType restocked
    subtotalSet {MONEY} totalTaxSet {MONEY} lineItem {{ {REFUND_LINE_ITEM} }} }} pageInfo {{ hasNextPage }} }}
  transactions(first: 5) {{ nodes {{ id kind status gateway createdAt processedAt amountSet {MONEY}
    parentTransaction {{ id }} }} }}"""

VARIANT = """id title sku barcode price compareAtPrice position taxable inventoryPolicy inventoryQuantity
  selectedOptions { name value } createdAt updatedAt inventoryItem { id }"""

PRODUCT = "id title handle vendor productType status tags descriptionHtml createdAt updatedAt publishedAt"

LEVEL = 'id updatedAt quantities(names: ["available"]) { name quantity } item { id }'

SCOPES = "{ currentAppInstallation { accessScopes { handle } } shop { ianaTimezone currencyCode } }"

# --- bulk ------------------------------------------------------------------------------------


def bulk_orders(search: str) -> str:
    return (
        f'{{ orders(query: "{search}") {{ edges {{ node {{ {ORDER}\n'
        f"  lineItems {{ edges {{ node {{ {LINE_ITEM} }} }} }} }} }} }} }}"
    )


BULK_PRODUCTS = (
    f"{{ products {{ edges {{ node {{ {PRODUCT}\n"
    f"  variants {{ edges {{ node {{ {VARIANT} }} }} }} }} }} }} }}"
)

BULK_INVENTORY = (
    f"{{ locations {{ edges {{ node {{ id\n  inventoryLevels {{ edges {{ node {{ {LEVEL} }} }} }} }} }} }} }}"
)

RUN_BULK = """mutation($query: String!) { bulkOperationRunQuery(query: $query) {
  bulkOperation { id status } userErrors { field message code } } }"""

BULK_STATUS = """query($id: ID!) { node(id: $id) { ... on BulkOperation {
  id status errorCode objectCount rootObjectCount fileSize url } } }"""

CURRENT_BULK = "{ currentBulkOperation { id status errorCode objectCount rootObjectCount url } }"

# --- paginated (reconcile, and details the bulk result cannot carry) ---------------------------

REFUNDS_BY_ID = f"""query($ids: [ID!]!) {{ nodes(ids: $ids) {{ ... on Refund {{ {REFUND} }} }} }}"""
REFUNDS_PER_CALL = 8

# Reconcile compares first (ids and updatedAt only: 2 points per order), then fetches in full
# only what the warehouse lacks.
ORDERS_CHANGED = """query($after: String, $q: String) {
  orders(first: 250, after: $after, query: $q, sortKey: UPDATED_AT) {
    nodes { id updatedAt refunds { id } } pageInfo { hasNextPage endCursor } } }"""

ORDERS_BY_ID = f"""query($ids: [ID!]!) {{ nodes(ids: $ids) {{ ... on Order {{ {ORDER}
  lineItems(first: 10) {{ nodes {{ {LINE_ITEM} }} pageInfo {{ hasNextPage endCursor }} }} }} }} }}"""
ORDERS_PER_CALL = 5

MORE_LINE_ITEMS = f"""query($id: ID!, $after: String) {{ node(id: $id) {{ ... on Order {{
  lineItems(first: 50, after: $after) {{ nodes {{ {LINE_ITEM} }}
    pageInfo {{ hasNextPage endCursor }} }} }} }} }}"""

PRODUCTS_CHANGED = """query($after: String, $q: String) {
  products(first: 250, after: $after, query: $q, sortKey: UPDATED_AT) {
    nodes { id updatedAt } pageInfo { hasNextPage endCursor } } }"""

PRODUCTS_BY_ID = f"""query($ids: [ID!]!) {{ nodes(ids: $ids) {{ ... on Product {{ {PRODUCT}
  variants(first: 20) {{ nodes {{ {VARIANT} }} pageInfo {{ hasNextPage }} }} }} }} }}"""
PRODUCTS_PER_CALL = 10

LOCATIONS = """query($after: String) { locations(first: 50, after: $after) {
  nodes { id } pageInfo { hasNextPage endCursor } } }"""

LEVELS_CHANGED = f"""query($id: ID!, $after: String, $q: String) {{ node(id: $id) {{ ... on Location {{
  inventoryLevels(first: 100, after: $after, query: $q) {{ nodes {{ {LEVEL} }}
    pageInfo {{ hasNextPage endCursor }} }} }} }} }}"""

DELETIONS = """query($after: String, $q: String) {
  deletionEvents(first: 100, after: $after, query: $q, subjectTypes: [PRODUCT]) {
    nodes { subjectId subjectType occurredAt } pageInfo { hasNextPage endCursor } } }"""
