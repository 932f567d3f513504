"""/api/knowledge: upload, library, jobs, search and retrieval-only ask (thin controllers)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, WebSocket, delete, get, post, websocket
from litestar.channels import ChannelsPlugin
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import FromQuery, JSONBody, QueryParameter

from appliance.api.auth import actor_of
from appliance.api.openapi import documented, errors
from appliance.api.params import PathId, QueryId, one_cursor
from appliance.api.schema_hints import SchemaExtra
from appliance.auth.guards import access, principal_of
from appliance.auth.service import AuthService
from appliance.auth.socket_watch import close_when_void
from appliance.db.documents import Document
from appliance.db.jobs import Job
from appliance.errors import InvalidInput
from appliance.knowledge.answer import answer
from appliance.knowledge.errors import UnsupportedType
from appliance.knowledge.search import MAX_SEARCH_K, MODES
from appliance.knowledge.service import (
    KnowledgeService,
    SearchResponse,
    SearchResult,
    check_upload_texts,
)
from appliance.llm.base import LLMBackend


class UploadItem(msgspec.Struct, kw_only=True):
    """What happened to one uploaded file."""

    filename: str
    duplicate: bool
    document: Document
    job: Job | None


class RejectedFile(msgspec.Struct, kw_only=True):
    """A file of a multi-file upload that was refused (nothing of it is stored)."""

    filename: str
    code: str
    message: str
    sniffed_type: str | None = None


class UploadOut(msgspec.Struct, kw_only=True):
    """Every file of an upload: the accepted ones, and the refused ones with their reason."""

    items: list[UploadItem]
    rejected: list[RejectedFile] = []


class DocumentDetail(msgspec.Struct, kw_only=True):
    """A document with its routes per page, chunk count and latest job."""

    document: Document
    job: Job | None
    versions: list[Document]


class CollectionOut(msgspec.Struct, kw_only=True):
    """A collection and what it holds."""

    name: str
    documents: int
    chunks: int


class AskIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A question, optionally limited to a collection."""

    question: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
    k: Annotated[int, msgspec.Meta(ge=1, le=20)] | None = None
    collection: str | None = None


class AskOut(msgspec.Struct, kw_only=True):
    """An answer (``mode`` llm) or the passages (``retrieval_only``), with the citations."""

    question: str
    mode: str
    message: str
    answer: str
    citations: list[SearchResult]


def _service(state: State) -> KnowledgeService:
    service: KnowledgeService = state.knowledge
    return service


def _user_id(request: Request[Any, Any, Any]) -> int | None:
    principal = principal_of(request)
    return None if principal is None else principal.user.id


async def _audit(
    request: Request[Any, Any, Any],
    state: State,
    action: str,
    document: Document,
    **extra: Any,
) -> None:
    """One audit row about a document version (what it is, never its text)."""
    actor = actor_of(request)
    auth: AuthService = state.auth
    await auth.audit.record(
        action,
        actor=actor.name,
        actor_id=actor.id,
        target=f"document:{document.id}",
        ip=actor.ip,
        detail={
            "title": document.title,
            "version": document.version,
            "collection": document.collection,
            **extra,
        },
    )


def _tags(raw: str) -> list[str]:
    raw = raw.strip()
    if raw.startswith("["):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise InvalidInput("tags must be a JSON list or comma-separated") from None
        return [str(t) for t in value] if isinstance(value, list) else []
    return [t for t in (p.strip() for p in raw.split(",")) if t]


async def _sort_by_type(
    service: KnowledgeService, files: list[UploadFile], contents: list[bytes]
) -> tuple[list[tuple[UploadFile, bytes]], list[RejectedFile]]:
    """Split a multi-file upload into readable files and refused ones, before anything is
    stored: a folder with one unreadable file in it still gets its good files in, and the
    answer names each refused file with its code and sniffed type (all refused: 415)."""
    accepted: list[tuple[UploadFile, bytes]] = []
    refused: list[RejectedFile] = []
    for upload, data in zip(files, contents, strict=True):
        try:
            await service.check_type(upload.filename, data)
        except UnsupportedType as err:
            sniffed = err.detail.get("sniffed_type") if isinstance(err.detail, dict) else None
            refused.append(
                RejectedFile(
                    filename=upload.filename,
                    code=err.code,
                    message=err.message,
                    sniffed_type=None if sniffed is None else str(sniffed),
                )
            )
        else:
            accepted.append((upload, data))
    if not accepted:
        names = ", ".join(f"{r.filename} ({r.sniffed_type})" for r in refused)
        raise UnsupportedType(
            f"unsupported file type, nothing was stored: {names}",
            detail={
                "files": [{"filename": r.filename, "sniffed_type": r.sniffed_type} for r in refused]
            },
        )
    return accepted, refused


@dataclass
class UploadOperation(Operation):
    """The upload's OpenAPI operation: its multipart body, which the handler reads itself
    (``request.form()``) so that one bad file of many is reported, not the whole request."""

    def __post_init__(self) -> None:
        form = Schema(
            type=OpenAPIType.OBJECT,
            required=["files"],
            properties={
                "files": Schema(
                    type=OpenAPIType.ARRAY,
                    items=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY),
                    description="One or many files ('file' is accepted too).",
                ),
                "collection": Schema(
                    type=OpenAPIType.STRING,
                    max_length=100,
                    description="1-100 letters (any script), digits, '_', '-' or '.' "
                    "(default: 'default').",
                ),
                "tags": Schema(
                    type=OpenAPIType.STRING,
                    description="Comma-separated, or a JSON list of strings.",
                ),
                "title": Schema(
                    type=OpenAPIType.STRING,
                    description="Title of a single file (default: its file name).",
                ),
            },
        )
        self.request_body = RequestBody(
            content={"multipart/form-data": OpenAPIMediaType(schema=form)}, required=True
        )


@documented
class KnowledgeController(Controller):
    """Documents, jobs, collections, search."""

    path = "/api/knowledge"

    @post(
        "/documents",
        status_code=202,
        opt=access("manager"),
        operation_class=UploadOperation,
        responses=errors(400, 413, 415, 422),
    )
    async def upload(self, request: Request[Any, Any, Any], state: State) -> UploadOut:
        """Multipart upload of one or many files (fields: files, collection, tags, title)."""
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise InvalidInput("send the files as multipart/form-data (field 'files')")
        form = await request.form()
        _check_upload_fields([(name, isinstance(v, UploadFile)) for name, v in form.multi_items()])
        collection = str(form.get("collection") or "default")
        tags = _tags(str(form.get("tags") or ""))
        title = str(form.get("title") or "") or None
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not files:
            raise InvalidInput("no files in the upload (multipart field 'files')")
        # the whole batch, before any of it is stored
        check_upload_texts([upload.filename or "" for upload in files], collection, tags, title)
        service = _service(state)
        contents = [await upload.read() for upload in files]
        rejected: list[RejectedFile] = []
        accepted = list(zip(files, contents, strict=True))
        if len(files) > 1:  # one file: its own typed error comes from service.upload
            accepted, rejected = await _sort_by_type(service, files, contents)
        items = []
        for upload, data in accepted:
            result = await service.upload(
                filename=upload.filename,
                data=data,
                uploader_id=_user_id(request),
                collection=collection,
                tags=tags,
                title=title if len(files) == 1 else None,
            )
            # a duplicate stored nothing, but who sent what is still worth the row
            await _audit(
                request,
                state,
                "document.upload",
                result.document,
                filename=upload.filename,
                duplicate=result.duplicate,
                job_id=None if result.job is None else result.job.id,
            )
            items.append(
                UploadItem(
                    filename=upload.filename,
                    duplicate=result.duplicate,
                    document=result.document,
                    job=result.job,
                )
            )
        return UploadOut(items=items, rejected=rejected)

    @get("/documents", opt=access("user"))
    async def list_documents(
        self,
        state: State,
        collection: FromQuery[str | None] = None,
        tag: FromQuery[str | None] = None,
        doc_state: Annotated[str | None, QueryParameter(name="state")] = None,
        include_retired: FromQuery[bool] = False,
        limit: Annotated[int, QueryParameter(ge=1, le=5000)] = 500,
        before: QueryId = None,
        after: QueryId = None,
    ) -> list[Document]:
        """Documents, newest first, filtered by collection, tag or state; ``before`` (an id)
        gives the page after one that ended there, ``after`` (an id) the documents past it
        oldest first (an id is never given twice)."""
        one_cursor(before, after)
        return await _service(state).documents.list_documents(
            collection=collection,
            tag=tag,
            state=doc_state,
            include_retired=include_retired,
            limit=limit,
            before=before,
            after=after,
        )

    @get("/documents/{document_id:int}", opt=access("user"))
    async def detail(self, state: State, document_id: PathId) -> DocumentDetail:
        """One document version: routes per page, chunk count, latest job, other versions."""
        service = _service(state)
        document = await service.get_document(document_id)
        versions = await service.documents.list_documents(
            collection=document.collection, include_retired=True, limit=5000
        )
        return DocumentDetail(
            document=document,
            job=await service.jobs.latest_for(document_id),
            versions=[d for d in versions if d.title == document.title],
        )

    @delete("/documents/{document_id:int}", status_code=204, opt=access("manager"))
    async def remove(
        self, request: Request[Any, Any, Any], state: State, document_id: PathId
    ) -> None:
        """Delete a document version: LanceDB rows, stored file and database rows.

        Deleting the current version makes the newest older one current again (re-indexed
        by a ``restore`` job)."""
        deleted = await _service(state).delete_document(document_id, _user_id(request))
        restored = deleted.restored
        await _audit(
            request,
            state,
            "document.delete",
            deleted.document,
            filename=deleted.document.filename,
            restored_id=None if restored is None else restored.id,
            restored_version=None if restored is None else restored.version,
        )

    @post(
        "/documents/{document_id:int}/reingest",
        status_code=202,
        opt=access("manager"),
        responses=errors(409),
    )
    async def reingest(
        self, request: Request[Any, Any, Any], state: State, document_id: PathId
    ) -> Job:
        """Queue the document again (e.g. after a failure)."""
        service = _service(state)
        job = await service.reingest(document_id, _user_id(request))
        document = await service.get_document(document_id)
        await _audit(request, state, "document.reingest", document, job_id=job.id)
        return job

    @get("/jobs/{job_id:int}", opt=access("user"))
    async def job(self, state: State, job_id: PathId) -> Job:
        """A job's state, stage, progress and error."""
        return await _service(state).get_job(job_id)

    @get("/collections", opt=access("user"))
    async def collections(self, state: State) -> list[CollectionOut]:
        """Collections with their document and chunk counts."""
        rows = await _service(state).documents.collections()
        return [CollectionOut(name=n, documents=d, chunks=c) for n, d, c in rows]

    @get("/search", opt=access("user"))
    async def search(
        self,
        state: State,
        q: Annotated[str, QueryParameter(schema_extra=SchemaExtra(min_length=1, pattern=r"\S"))],
        k: Annotated[int | None, QueryParameter(ge=1, le=MAX_SEARCH_K)] = None,
        mode: Annotated[str, QueryParameter(schema_extra=SchemaExtra(enum=MODES))] = "hybrid",
        collection: FromQuery[str | None] = None,
        tag: FromQuery[str | None] = None,
        document: QueryId = None,
    ) -> SearchResponse:
        """Hybrid search (mode=dense or fulltext for one retriever alone)."""
        return await _service(state).search(
            q, k=k, mode=mode, collection=collection, tag=tag, document_id=document
        )

    @get("/index", opt=access("manager"))
    async def index(self, state: State) -> dict[str, Any]:
        """Rows in the vector store and whether its ANN index exists."""
        return await _service(state).index_stats()

    @post("/ask", status_code=200, opt=access("user"))
    async def ask(self, state: State, data: JSONBody[AskIn]) -> AskOut:
        """An answer from the local LLM grounded in the best passages, with their citations.

        ``mode`` is ``llm`` for a written answer, ``retrieval_only`` when the passages are
        returned instead (no match, or the LLM busy, down or unusable; ``message`` says which).
        """
        found = await _service(state).search(data.question, k=data.k, collection=data.collection)
        llm: LLMBackend = state.llm
        result = await answer(llm, data.question, found.results)
        return AskOut(
            question=data.question,
            mode=result.mode,
            message=result.message,
            answer=result.text,
            citations=found.results,
        )


UPLOAD_FILE_FIELDS = ("files", "file")
UPLOAD_TEXT_FIELDS = ("collection", "tags", "title")


def _check_upload_fields(fields: list[tuple[str, bool]]) -> None:
    """Refuse a form field the upload does not know (a typo such as ``colection`` would
    otherwise put the documents in the default collection unnoticed), a file under a text
    field and text under a file field."""
    for name, is_file in fields:
        wants_file = name in UPLOAD_FILE_FIELDS
        if not wants_file and name not in UPLOAD_TEXT_FIELDS:
            problem = f"unknown form field {name!r}"
        elif is_file and not wants_file:
            problem = f"the form field {name!r} must be text, not a file"
        elif wants_file and not is_file:
            problem = f"the form field {name!r} must be a file"
        else:
            continue
        raise InvalidInput(
            f"{problem} (files go in 'files'; text fields: {', '.join(UPLOAD_TEXT_FIELDS)})",
            detail={"field": name},
        )


@websocket("/ws/knowledge/jobs", opt=access("user"))
async def job_events(
    socket: WebSocket[Any, Any, Any], channels: NamedDependency[ChannelsPlugin], state: State
) -> None:
    """The caller's job progress events (channel ``jobs:user:<id>``), as JSON text frames.

    Closed with 4401 as soon as the caller's login is void (disabled, password reset, token
    revoked), like the practice sockets."""
    principal = principal_of(socket)
    await socket.accept()
    if principal is None:
        await socket.close(code=4401)
        return
    auth: AuthService = state.auth
    cookie_session = socket.scope.get("session")

    async def still_allowed() -> int | None:
        now = await auth.revalidate(
            principal, cookie_session if isinstance(cookie_session, dict) else None
        )
        return 4401 if now is None else None

    user_id = principal.user.id
    recheck_s = state.settings.auth.socket_recheck_s
    async with (
        channels.start_subscription([f"jobs:user:{user_id}"]) as subscriber,
        subscriber.run_in_background(socket.send_data),
    ):
        watch = asyncio.ensure_future(
            close_when_void(socket, auth, user_id, still_allowed, recheck_s)
        )
        try:
            while True:  # the client only listens; reading notices when it goes away
                await socket.receive_data(mode="text")
        except WebSocketDisconnect:
            return
        finally:
            watch.cancel()
            with contextlib.suppress(BaseException):
                await watch
