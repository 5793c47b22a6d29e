"""Errors in the OpenAI shape: `{"error": {"message", "type", "param", "code"}}`.

Every failure the server answers with, FastAPI's own (bad JSON, wrong types, unknown routes)
included, goes out in this shape so the `openai` client raises its matching exception
(`BadRequestError` for 400, `AuthenticationError` for 401, `NotFoundError` for 404,
`InternalServerError` for 5xx). `type` names the error class and `code` repeats the HTTP status,
as vLLM writes them.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tenon.server.engine_interface import EngineDeadError, QueueFullError

ENGINE_DEAD_MESSAGE = (
    "the engine core process died; this server cannot serve requests any more. "
    "Check the server log for the cause and restart `tenon serve`"
)
QUEUE_FULL_MESSAGE = "the engine's waiting queue is full; retry the request later"

_TYPE_BY_STATUS = {
    HTTPStatus.BAD_REQUEST: "BadRequestError",
    HTTPStatus.UNAUTHORIZED: "AuthenticationError",
    HTTPStatus.NOT_FOUND: "NotFoundError",
    HTTPStatus.METHOD_NOT_ALLOWED: "MethodNotAllowedError",
    HTTPStatus.INTERNAL_SERVER_ERROR: "InternalServerError",
    HTTPStatus.SERVICE_UNAVAILABLE: "ServiceUnavailableError",
}


class OpenAIError(Exception):
    """An error answered to the client with `status` and the OpenAI error body."""

    def __init__(
        self,
        message: str,
        status: HTTPStatus = HTTPStatus.BAD_REQUEST,
        *,
        param: str | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.error_type = error_type or _TYPE_BY_STATUS.get(status, status.phrase.replace(" ", ""))

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.status, param=self.param, error_type=self.error_type)


def error_body(
    message: str, status: HTTPStatus, *, param: str | None = None, error_type: str | None = None
) -> dict[str, Any]:
    error_type = error_type or _TYPE_BY_STATUS.get(status, status.phrase.replace(" ", ""))
    return {"error": {"message": message, "type": error_type, "param": param, "code": int(status)}}


def error_response(error: OpenAIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=int(error.status))


def from_engine_error(error: Exception) -> OpenAIError:
    """The HTTP answer for an exception raised by the engine or by request validation."""
    if isinstance(error, OpenAIError):
        return error
    if isinstance(error, EngineDeadError):
        return OpenAIError(f"{ENGINE_DEAD_MESSAGE} ({error})" if str(error) else ENGINE_DEAD_MESSAGE,
                           HTTPStatus.SERVICE_UNAVAILABLE, error_type="EngineDeadError")
    if isinstance(error, QueueFullError):
        message = f"{QUEUE_FULL_MESSAGE} ({error})" if str(error) else QUEUE_FULL_MESSAGE
        return OpenAIError(message, HTTPStatus.SERVICE_UNAVAILABLE, error_type="QueueFullError")
    if isinstance(error, ValueError | TypeError):
        return OpenAIError(str(error), HTTPStatus.BAD_REQUEST)
    return OpenAIError(f"internal server error: {type(error).__name__}: {error}",
                       HTTPStatus.INTERNAL_SERVER_ERROR)


def _validation_message(error: RequestValidationError) -> tuple[str, str | None]:
    parts = []
    param = None
    for detail in error.errors():
        if detail.get("type") == "json_invalid":
            reason = detail.get("ctx", {}).get("error", "invalid JSON")
            position = detail.get("loc", ("body", "?"))[-1]
            parts.append(f"the request body is not valid JSON ({reason} at character {position})")
            continue
        location = [str(item) for item in detail.get("loc", ()) if item != "body"]
        if param is None and location:
            param = location[-1]
        where = ".".join(location) or "body"
        parts.append(f"{where}: {detail.get('msg', 'invalid value')}")
    return "; ".join(parts) or "invalid request", param


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error in the OpenAI shape (validation errors become 400, as in vLLM)."""

    async def on_openai_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, OpenAIError)
        return error_response(error)

    async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        message, param = _validation_message(error)
        return error_response(OpenAIError(message, HTTPStatus.BAD_REQUEST, param=param))

    async def on_http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        status = HTTPStatus(error.status_code)
        message = error.detail if isinstance(error.detail, str) else str(error.detail)
        return JSONResponse(error_body(message, status), status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    async def on_engine_error(request: Request, error: Exception) -> JSONResponse:
        return error_response(from_engine_error(error))

    app.add_exception_handler(OpenAIError, on_openai_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(EngineDeadError, on_engine_error)
    app.add_exception_handler(QueueFullError, on_engine_error)
