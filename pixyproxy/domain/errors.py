"""Every exception the service raises extends ImageException.

Each carries a stable machine `code`; the HTTP status lives in the entrypoint, not here.
"""


class ImageException(Exception):
    code = "image_error"

    def __init__(self, message: str = "", **details: object) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip()
        self.details = details


class ImageNotFound(ImageException):
    """No image has that guid."""

    code = "image_not_found"


class JobNotFound(ImageNotFound):
    """No job has that id."""

    code = "job_not_found"


class JobAlreadyFinished(ImageException):
    """The job has already ended; only a queued or running job can be canceled."""

    code = "job_finished"


class InvalidImageRequest(ImageException):
    """The request is not valid."""

    code = "invalid_request"


class InvalidCursor(InvalidImageRequest):
    """The cursor is not one this service issued."""

    code = "invalid_cursor"


class InvalidWebhookUrl(InvalidImageRequest):
    """The webhook_url is not one this service will call."""

    code = "invalid_webhook_url"


class PayloadTooLarge(InvalidImageRequest):
    """The request body is too large."""

    code = "payload_too_large"


class IdempotencyConflict(ImageException):
    """That Idempotency-Key was already used with a different request."""

    code = "idempotency_conflict"


class GeneratorError(ImageException):
    """The image generator failed."""

    code = "generator_error"


class GeneratorModelUnavailable(GeneratorError):
    """The configured model is not offered by the image generator (check PIXYPROXY_OPENAI_MODEL)."""

    code = "generator_model_unavailable"


class GeneratorTimeout(GeneratorError):
    """The image generator did not answer in time."""

    code = "generator_timeout"


class GeneratorRateLimited(GeneratorError):
    """The image generator is rate limiting us; try again later."""

    code = "generator_rate_limited"

    def __init__(self, message: str = "", retry_after: float | None = None, **details: object) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class ContentPolicyViolation(GeneratorError):
    """The generator refused the prompt under its content policy."""

    code = "content_policy_violation"


class DependencyUnavailable(ImageException):
    """A service PixyProxy depends on is unavailable."""

    code = "dependency_unavailable"


class MetadataUnavailable(DependencyUnavailable):
    """The metadata store is unavailable."""

    code = "metadata_unavailable"


class MetadataOutcomeUnknown(MetadataUnavailable):
    """The metadata store stopped answering after a write was sent: it may or may not have happened."""


class StorageUnavailable(DependencyUnavailable):
    """The image storage is unavailable."""

    code = "storage_unavailable"


class BudgetExceeded(ImageException):
    """This API key has used its daily budget."""

    code = "budget_exceeded"

    def __init__(self, message: str = "", reset_at: object = None, retry_after: float = 1, **details: object):
        super().__init__(message, **details)
        self.reset_at = reset_at  # when the budget starts again (a UTC datetime)
        self.retry_after = retry_after  # seconds until then
