"""Logging pieces referenced by the LOGGING setting."""

import logging


class WithoutTraceback(logging.Filter):
    """For records of the caller's mistakes (a refused Host header): one line each. Anyone may
    send them, unauthenticated, so a traceback per request would flood the log."""

    def filter(self, record):
        record.exc_info = None
        record.exc_text = None
        return True
