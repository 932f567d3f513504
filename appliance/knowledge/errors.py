"""Typed ingestion errors; each code is stable and shown to the uploader and in the job record."""

from __future__ import annotations

from appliance.errors import AppError


class KnowledgeError(AppError):
    """Base of every ingestion/search error."""

    status_code = 422
    code = "knowledge_error"


class TooLarge(KnowledgeError):
    """File over the size limit, or an image over the pixel cap (decompression bomb)."""

    status_code = 413
    code = "too_large"


class TooManyPages(KnowledgeError):
    """More pages than knowledge.max_pages; the message names the limit."""

    code = "too_many_pages"


class NoTextFound(KnowledgeError):
    """Nothing extractable; the message names the routes tried."""

    code = "no_text_found"


class UnsupportedType(KnowledgeError):
    """A type the router has no extractor for; the message names the sniffed type."""

    status_code = 415
    code = "unsupported_type"


class CorruptFile(KnowledgeError):
    """The file claims a type but cannot be parsed as it (truncated PDF, broken ZIP…)."""

    code = "corrupt_file"


class EncryptedFile(KnowledgeError):
    """A password-protected PDF or Office file."""

    code = "encrypted_file"


class InvalidCollection(KnowledgeError):
    """A collection name a scenario could not refer to (scenarios take 1-100 word characters)."""

    status_code = 400
    code = "invalid_field"
