"""Extractors, one module per format; each turns a file into an ExtractedDocument."""
