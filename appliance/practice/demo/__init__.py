"""The bundled demo pack: a premium credit card in English and Simplified Chinese."""
