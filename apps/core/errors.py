"""Domain errors. Services raise these; the API's one exception handler maps `code` to an HTTP
status and API.md's error body, commands print `message`. No HTTP codes in services."""


class DomainError(Exception):
    code = "error"
    default_message = "The request could not be completed."

    def __init__(self, message=None, *, details=None):
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


class InvalidInput(DomainError):
    """Input that breaks a rule; `details` maps field -> list of messages."""

    code = "validation_error"
    default_message = "The input is not valid."


class NotFound(DomainError):
    code = "not_found"
    default_message = "Not found."


class AccountNotFound(NotFound):
    code = "account_not_found"
    default_message = "No account has that id."
