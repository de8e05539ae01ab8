"""Shopify's privacy requests (``customers/data_request``, ``customers/redact``,
``shop/redact``) and personal data in the raw bodies: see ``scrub``, ``requests``,
``redaction`` and ``service``. Pure logic over the ports; no cloud import here."""
