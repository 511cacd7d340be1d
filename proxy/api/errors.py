"""CodeArtifact's error shapes: the status, ``x-amzn-ErrorType`` header and JSON body that botocore's
rest-json parser turns into ``AccessDeniedException``, ``ConflictException`` and the others."""

from __future__ import annotations

from aiohttp import web

from proxy.api.model import service_model


class ApiError(Exception):
    """A refusal of a /v1 operation. ``code`` is one of the service model's exception shapes; the HTTP
    status comes from that shape. ``fields`` are the shape's other members (resourceId, reason...)."""

    def __init__(self, code: str, message: str, **fields: str | int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields

    @property
    def status(self) -> int:
        return int(service_model().shape_for(self.code).metadata["error"]["httpStatusCode"])

    def response(self) -> web.Response:
        """The answer: ``fields`` the shape places in a header (ThrottlingException's
        ``retryAfterSeconds`` is ``Retry-After``) go there, the others in the JSON body."""
        members = service_model().shape_for(self.code).members
        headers = {"x-amzn-ErrorType": self.code}
        body: dict[str, str | int] = {"message": self.message}
        for name, value in self.fields.items():
            member = members.get(name)
            if member is not None and member.serialization.get("location") == "header":
                headers[member.serialization.get("name", name)] = str(value)
            else:
                body[name] = value
        return web.json_response(body, status=self.status, headers=headers)


def validation(message: str, reason: str = "FIELD_VALIDATION_FAILED") -> ApiError:
    return ApiError("ValidationException", message, reason=reason)


def not_found(resource_type: str, resource_id: str, message: str | None = None) -> ApiError:
    return ApiError(
        "ResourceNotFoundException",
        message or f"{resource_type} {resource_id} does not exist",
        resourceId=resource_id,
        resourceType=resource_type,
    )


def conflict(resource_type: str, resource_id: str, message: str) -> ApiError:
    return ApiError("ConflictException", message, resourceId=resource_id, resourceType=resource_type)


def access_denied(message: str) -> ApiError:
    return ApiError("AccessDeniedException", message)
