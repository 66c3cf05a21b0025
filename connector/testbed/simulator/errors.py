"""Genesys `ErrorBody` responses (genesys-api.md §3.3) and the exception handlers raise to produce them.

Every error the simulator returns has the VERIFIED ErrorBody shape: message, code, status, contextId,
details [], errors []. `contextId` equals the response's `ININ-Correlation-Id` header (INFERRED link).
The `code` strings are FOLKLORE-plus (community constants); each one used here is a module constant.
"""

from __future__ import annotations

from typing import Any

BAD_REQUEST = "bad.request"
INVALID_DATE = "invalid.date"
INVALID_VALUE = "invalid.value"
BAD_CREDENTIALS = "bad.credentials"
MISSING_PERMISSIONS = "missing.permissions"
NOT_FOUND = "not.found"
REQUEST_TIMEOUT = "request.timeout"
TOO_MANY_REQUESTS = "too.many.requests"
INTERNAL_SERVER_ERROR = "internal.server.error"
BAD_GATEWAY = "bad.gateway"
SERVICE_UNAVAILABLE = "service.unavailable"
GATEWAY_TIMEOUT = "gateway.timeout"

# Swagger standard response texts (VERIFIED via the generated docs, genesys-api.md §3.3).
STANDARD_MESSAGES: dict[int, str] = {
    400: "The request could not be understood by the server due to malformed syntax.",
    401: "No authentication bearer token specified in authorization header.",
    403: "You are not authorized to perform the requested action.",
    404: "The requested resource was not found.",
    408: "The client did not produce a request within the server timeout limit. "
    "This can be caused by a slow network connection and/or large payloads.",
    500: "The server encountered an unexpected condition which prevented it from fulfilling the request.",
    502: "Bad Gateway.",
    503: "Service Unavailable - The server is currently unavailable "
    "(because it is overloaded or down for maintenance).",
    504: "The request timed out.",
}
STANDARD_CODES: dict[int, str] = {
    400: BAD_REQUEST,
    401: BAD_CREDENTIALS,
    403: MISSING_PERMISSIONS,
    404: NOT_FOUND,
    408: REQUEST_TIMEOUT,
    429: TOO_MANY_REQUESTS,
    500: INTERNAL_SERVER_ERROR,
    502: BAD_GATEWAY,
    503: SERVICE_UNAVAILABLE,
    504: GATEWAY_TIMEOUT,
}


def rate_limit_message(retry_after_s: int) -> str:
    """The VERIFIED swagger 429 text with the number filled in."""
    return f"Rate limit exceeded the maximum. Retry the request in [{retry_after_s}] seconds"


class ApiProblem(Exception):
    """Raised inside request handling; becomes one ErrorBody response."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
        message_params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.message = message or STANDARD_MESSAGES.get(status, "Error")
        self.code = code or STANDARD_CODES.get(status, BAD_REQUEST)
        self.details = details or []
        self.message_params = message_params
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(f"{status} {self.code}: {self.message}")

    def body(self, context_id: str) -> dict[str, Any]:
        """The ErrorBody dict for this problem."""
        return error_body(
            self.status,
            self.code,
            self.message,
            context_id,
            details=self.details,
            message_params=self.message_params,
            extra=self.extra,
        )


def error_body(
    status: int,
    code: str,
    message: str,
    context_id: str,
    *,
    details: list[dict[str, Any]] | None = None,
    message_params: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An ErrorBody: message, code, status, contextId, details, errors (+ messageParams when given)."""
    body: dict[str, Any] = {"message": message, "code": code, "status": status}
    if message_params:
        body["messageWithParams"] = message
        body["messageParams"] = dict(message_params)
    body["contextId"] = context_id
    body["details"] = list(details or [])
    body["errors"] = []
    if extra:
        body.update(extra)
    return body


def bad_request(message: str, *, code: str = BAD_REQUEST, field: str | None = None) -> ApiProblem:
    """A 400 that names what is wrong (and the field, in `details`, when there is one)."""
    details = [{"errorCode": code, "fieldName": field}] if field else None
    return ApiProblem(400, message, code=code, details=details)
