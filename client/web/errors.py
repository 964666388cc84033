"""The one error type of the web tier: an HTTP status, a stable code and a sentence."""

from __future__ import annotations


class ApiError(Exception):
    """Answered as `{"error": {"code": ..., "message": ...}}` with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


def bad_input(message: str) -> ApiError:
    return ApiError(400, "bad_input", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)
