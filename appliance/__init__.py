"""SalesBoost Appliance: an on-prem, single-process AI sales-training server."""

__version__ = "0.1.0"
