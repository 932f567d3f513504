"""The browser-facing parts: templates and the pages rendered from them."""
