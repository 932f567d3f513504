"""The knowledge pipeline: sniff -> route -> extract (text layer, OCR, tables) -> chunk -> embed -> store -> search."""
